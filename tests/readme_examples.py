"""The README's fenced examples, read from the README itself, and the small files they name.

``blocks("python")`` gives every ```python block with the heading it sits under
and its line number; ``make_user_files(folder)`` writes the files a reader is
told to bring (``churn.csv``, ``signals.npy``, ``xy.npz``, ``data/churn.csv``),
a few dozen rows each; ``run_as_sessions(paths, cwd)`` runs blocks as a reader
pasting each into a fresh Python would, and returns the value of each
expression statement (what the interpreter would echo).
"""

import os
import pickle
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# Runs each file of argv[1:-1] in a fresh namespace, as a reader pasting it into Python would: an
# expression statement's value is what the interpreter would echo, kept (pickled, or its repr where it
# does not pickle) so that a test can check what the example shows. Writes {file: ("ok", values)} or
# {file: ("error", traceback)} to argv[-1].
_SESSION = """
import ast, pickle, sys, traceback
results = {}
for path in sys.argv[1:-1]:
    echoed, namespace = [], {"__name__": "__main__"}
    try:
        for node in ast.parse(open(path).read(), path).body:
            if isinstance(node, ast.Expr):
                value = eval(compile(ast.Expression(node.value), path, "eval"), namespace)
                try:
                    echoed.append(pickle.loads(pickle.dumps(value)))
                except Exception:
                    echoed.append(repr(value))
            else:
                exec(compile(ast.Module([node], []), path, "exec"), namespace)
        results[path] = ("ok", echoed)
    except BaseException:
        results[path] = ("error", traceback.format_exc())
with open(sys.argv[-1], "wb") as file:
    pickle.dump(results, file)
"""


@dataclass(frozen=True)
class Block:
    heading: str
    line: int  # of the opening fence
    source: str

    @property
    def id(self):
        return f"{self.heading} (line {self.line})"


def blocks(language):
    """Every fenced block of ``language`` in the README, in order."""
    found, heading, opened, lines = [], "", None, []
    for number, line in enumerate(README.read_text().splitlines(), start=1):
        if opened is None and line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif opened is None and line.startswith("```"):
            opened, lines = (line[3:].strip(), number), []
        elif opened is not None and line.startswith("```"):
            if opened[0] == language:
                found.append(Block(heading, opened[1], "\n".join(lines) + "\n"))
            opened = None
        elif opened is not None:
            lines.append(line)
    return found


def fastgd_commands():
    """The README's indented ``fastgd`` command lines, without the comment or description after them.

    A synopsis line is made a command: its optional parts taken (brackets dropped), the first of
    ``a|b`` alternatives, ``CONFIG`` read as ``my-sweep.toml``.
    """
    commands = []
    for line in README.read_text().splitlines():
        if line.startswith("    ") and line.strip().startswith("fastgd "):
            command = re.split(r"\s{2,}|\s#", line.strip())[0]
            command = re.sub(r"(\w+)(\|[\w-]+)+", r"\1", command.replace("[", "").replace("]", ""))
            commands.append(command.replace("CONFIG", "my-sweep.toml"))
    return commands


def make_user_files(folder):
    """The files the README's examples name, small: a churn table (also as data/churn.csv) and two arrays."""
    folder = Path(folder)
    rng = np.random.default_rng(0)
    n_rows = 60
    visits = rng.integers(0, 30, n_rows)
    frame = pd.DataFrame({
        "customer_id": np.arange(1000, 1000 + n_rows),
        "plan": rng.integers(1, 4, n_rows),
        "age": rng.normal(40.0, 12.0, n_rows).round(1),
        "visits": visits,
        "city": rng.choice(["paris", "lyon", "nice"], n_rows),
        "churned": np.where(visits + rng.normal(0, 5, n_rows) < 15, "yes", "no"),
    })
    frame.to_csv(folder / "churn.csv", index=False)
    (folder / "data").mkdir(exist_ok=True)
    frame.to_csv(folder / "data" / "churn.csv", index=False)
    signals = rng.normal(size=(n_rows, 6))
    signals[:, -1] = (signals[:, 0] > 0).astype(float)  # the target, a column index away
    np.save(folder / "signals.npy", signals)
    X = rng.normal(size=(n_rows, 4))
    np.savez(folder / "xy.npz", X=X, y=X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.1 * rng.normal(size=n_rows))


def environment():
    """This process's environment, with this checkout's fastgd first on the path of a child process."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return dict(os.environ, PYTHONPATH=path)


def run_as_sessions(paths, cwd):
    """Run each Python file of ``paths`` in a fresh namespace of one new interpreter in ``cwd``, in order.

    Returns {path: ("ok", the value of each expression statement)} or {path: ("error", its traceback)}.
    One interpreter for all saves an import of fastgd per example; each example still sees only
    the names it defines and imports itself.
    """
    results = Path(cwd) / ".results.pickle"
    paths = [str(path) for path in paths]
    completed = subprocess.run([sys.executable, "-c", _SESSION, *paths, str(results)], cwd=cwd, env=environment(),
                               capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, f"the examples' interpreter failed:\n{completed.stderr[-3000:]}"
    with open(results, "rb") as file:
        return pickle.load(file)


def substituted(source, replacements):
    """``source`` with each (old, new) replaced; each ``old`` must occur exactly once, so a changed example fails."""
    for old, new in replacements:
        assert source.count(old) == 1, f"{old!r} is no longer in the example once: update the test's replacements"
        source = source.replace(old, new)
    return source


NUMBER_WORDS = {word: number for number, word in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty twenty-one twenty-two twenty-three twenty-four twenty-five twenty-six "
    "twenty-seven twenty-eight twenty-nine thirty".split())}


def number_word(text):
    """The number a written-out English number from zero to twenty-five stands for."""
    return NUMBER_WORDS[text.lower()]
