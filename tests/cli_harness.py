"""A harness for the command line's promise about bad input: exit status 2, one line on stderr, nothing changed.

    assert_refused(["train", "--lr", "inf"], tmp_path, "argument --lr")

runs ``fastgd train --lr inf`` with ``tmp_path`` as the working directory and
asserts that it exits with status 2, writes exactly one line to stderr (naming
the problem: ``message`` must be in it) and no traceback, and that no file or
directory under ``tmp_path`` was created, removed or changed, byte for byte.

By default the command runs in this process (``fastgd.cli.main``), which
costs no interpreter start; ``in_process=False`` runs ``python -m fastgd.cli``
in a child process, for what must be seen from outside: the environment
(``FASTGD_*`` settings are read at import) and the real entry point.
"""

import contextlib
import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["snapshot", "run_command", "assert_refused"]


# the smallest sweep configuration that runs: the hostile probes' cases are edits of it
TINY_SWEEP = """
name = "tiny"
datasets = ["iris"]
rules = ["sgd"]
learning_rates = [0.1]
seeds = [0]
epochs = 1

[model]
hidden_layer_sizes = [4]

[targets]
iris = 0.5
"""


def snapshot(root):
    """Every path under ``root``: "dir" for a directory, (size, mtime, SHA-256) for anything else."""
    state = {}
    for path in sorted(Path(root).rglob("*")):
        relative = str(path.relative_to(root))
        if path.is_dir() and not path.is_symlink():
            state[relative] = "dir"
        else:
            status = path.lstat()
            content = path.read_bytes() if path.is_file() else b""
            state[relative] = (status.st_size, status.st_mtime_ns, hashlib.sha256(content).hexdigest())
    return state


def run_command(arguments, cwd, env=None, in_process=True):
    """(exit status, stdout, stderr) of ``fastgd ARGUMENTS`` run in ``cwd``."""
    arguments = [str(argument) for argument in arguments]
    if in_process:
        assert env is None, "the environment is read at import: run a child process (in_process=False)"
        from fastgd import cli

        out, err = io.StringIO(), io.StringIO()
        previous = os.getcwd()
        os.chdir(cwd)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = cli.main(arguments)
                except SystemExit as exit:  # argparse's errors
                    code = exit.code
        finally:
            os.chdir(previous)
        return code, out.getvalue(), err.getvalue()
    environment = dict(os.environ, **(env or {}))
    result = subprocess.run([sys.executable, "-m", "fastgd.cli", *arguments], cwd=cwd, env=environment,
                            capture_output=True, text=True, timeout=600)
    return result.returncode, result.stdout, result.stderr


def assert_refused(arguments, root, message, env=None, in_process=True):
    """Run ``fastgd ARGUMENTS`` in ``root``; assert exit 2, one line on stderr holding ``message``, no change."""
    before = snapshot(root)
    code, out, err = run_command(arguments, root, env=env, in_process=in_process)
    lines = err.splitlines()
    assert code == 2, f"exit status {code}; stderr:\n{err}"
    assert len(lines) == 1 and "Traceback" not in err, f"not one line on stderr:\n{err}"
    assert lines[0].startswith("fastgd") and ": error: " in lines[0], lines[0]
    assert message in lines[0], f"{message!r} not in {lines[0]!r}"
    assert snapshot(root) == before, "the refused command created, removed or changed files"
    return lines[0]
