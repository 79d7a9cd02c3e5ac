"""Every example of the README runs as written, as a reader copying it into an empty folder would run it.

Each ```python block runs in a fresh namespace (all of them in one new
interpreter, which saves an import of fastgd per block), in order, in a folder holding
the files the README tells the reader to bring (a few dozen rows each) and,
for the blocks that read ``results.db``, the store of a small tuning sweep. The whole
TOML configuration (``my-sweep.toml``) runs through the README's own command,
``fastgd sweep my-sweep.toml --store results.db --jobs 2``; a TOML fragment
must say so in its first line and is checked inside that configuration. Every
other ``fastgd`` command line of the README is parsed by the command line's own
parser (not run: most are minutes of training). The GPU block runs under the
CUDA simulator (tests/cuda/test_cuda_readme.py).
"""

import re
import shlex
import subprocess
import sys
import tomllib

import numpy as np
import pytest

from fastgd import optim, rules, sweep
from fastgd.cli import build_parser
from readme_examples import (NUMBER_WORDS, README, blocks, environment, fastgd_commands, make_user_files, number_word,
                             run_as_sessions)

GPU_HEADING = "On an NVIDIA GPU"
PYTHON_BLOCKS = [block for block in blocks("python") if block.heading != GPU_HEADING]
TOML_BLOCKS = blocks("toml")
WHOLE_CONFIGURATION = "# my-sweep.toml"
FRAGMENT = "# a fragment of a configuration"

# A tuning sweep small enough to run in seconds, standing for the reader's own: the README's Python
# blocks on sweeps read its store as results.db.
TUNING_SWEEP = """
name = "tuned"
datasets = ["iris", "wine"]
rules = ["sgd", "adam"]
epochs = 3

[model]
hidden_layer_sizes = [8]

[tuning]
budget = "one-shot"
final_seeds = 10

[targets]
iris = 0.5
wine = 0.5
"""


def _digits_score(echoed):
    score, final_loss, diverged_epoch = echoed[-1]
    assert score > 0.9 and np.isfinite(final_loss) and diverged_epoch is None


def _quadratic_minimum(echoed):
    np.testing.assert_allclose(echoed[-1], 0.0, atol=0.05)  # the minimum of sum(params**2)


def _churn_summary(echoed):
    task, n_classes, content_hash = echoed[-1]
    assert (task, n_classes) == ("classification", 2) and re.fullmatch("[0-9a-f]{64}", content_hash)


def _registry(echoed):
    assert echoed[-1] == sorted(optim.OPTIMIZERS)


# What some examples show, checked: (a line of the block, the check of its echoed values).
SHOWN = [
    ("clf.score(digits.X_test, digits.y_test), clf.loss_curve_[-1], clf.diverged_epoch_", _digits_score),
    ("fit_quadratic(np.array([3.0, -2.0]), 500)", _quadratic_minimum),
    ("churn.task, churn.n_classes, churn.content_hash", _churn_summary),
    ("sorted(optim.OPTIMIZERS)", _registry),
]


def test_the_readme_has_the_examples_this_file_runs():
    assert len(PYTHON_BLOCKS) >= 8 and len(TOML_BLOCKS) >= 2
    sources = "".join(block.source for block in PYTHON_BLOCKS)
    for line, _ in SHOWN:
        assert line in sources, f"{line!r} is no longer in a README example: update SHOWN"


def test_every_python_example_runs_as_written(tmp_path):
    # one test, not one per block: under pytest-xdist each worker would otherwise start its own interpreter
    # and sweep; the message names every block that fails
    pytest.importorskip("mnist1d")  # the data extra: "Your own data" loads MNIST-1D
    make_user_files(tmp_path)
    sweep.run_sweep(sweep.parse(tomllib.loads(TUNING_SWEEP)), tmp_path / "results.db", jobs=1, progress=False)
    paths = []
    for number, block in enumerate(PYTHON_BLOCKS):
        paths.append(tmp_path / f"example_{number}.py")
        paths[-1].write_text(block.source)
    results = run_as_sessions(paths, tmp_path)
    failures = [f"README line {block.line} ({block.heading}):\n{results[str(path)][1]}"
                for block, path in zip(PYTHON_BLOCKS, paths) if results[str(path)][0] != "ok"]
    assert not failures, "\n".join(failures)
    for block, path in zip(PYTHON_BLOCKS, paths):
        for line, check in SHOWN:
            if line in block.source:
                check(results[str(path)][1])


def test_every_toml_block_is_a_whole_configuration_or_says_it_is_a_fragment():
    for block in TOML_BLOCKS:
        first = block.source.splitlines()[0]
        assert first in (WHOLE_CONFIGURATION, FRAGMENT), f"{block.id} starts {first!r}"
    assert [block.source.splitlines()[0] for block in TOML_BLOCKS].count(WHOLE_CONFIGURATION) == 1


def _whole_configuration():
    return next(block.source for block in TOML_BLOCKS if block.source.startswith(WHOLE_CONFIGURATION))


def test_the_readme_configuration_runs_with_the_readme_command_and_two_workers(tmp_path):
    # its generated set is made by each worker: every run stored, none failed on the data's content hash
    make_user_files(tmp_path)
    (tmp_path / "my-sweep.toml").write_text(_whole_configuration())
    command = "fastgd sweep my-sweep.toml --store results.db --jobs 2"
    assert command in fastgd_commands()
    result = subprocess.run([sys.executable, "-m", "fastgd.cli", *shlex.split(command)[1:], "--quiet"],
                            cwd=tmp_path, env=environment(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    runs = sweep.load_runs(tmp_path / "results.db")
    config = sweep.load_config(tmp_path / "my-sweep.toml")
    assert len(runs) == len(sweep.runs(config)) and set(runs["dataset"]) == {"churn", "blobs", "digits"}
    assert not (runs["status"] == "failed").any(), runs.loc[runs["status"] == "failed", "error"].iloc[0]


def test_a_toml_fragment_makes_a_configuration_that_loads_when_added_as_the_readme_says(tmp_path):
    make_user_files(tmp_path)
    whole = _whole_configuration()
    # "take out that configuration's learning_rates and seeds"
    without_grid = "\n".join(line for line in whole.splitlines()
                             if not line.startswith(("learning_rates", "seeds")))
    fragments = [block for block in TOML_BLOCKS if block.source.startswith(FRAGMENT)]
    assert fragments
    for block in fragments:
        (tmp_path / "tuned.toml").write_text(without_grid + "\n" + block.source)
        config = sweep.load_config(tmp_path / "tuned.toml")
        table = tomllib.loads(block.source)["tuning"]
        assert config.tuning.budget == table["budget"] and config.tuning.final_seeds == table["final_seeds"]
        phases = {spec.phase for spec in sweep.runs(config)}
        assert phases == {"tune"}, phases  # the final runs follow from the stored trials


def test_the_number_of_built_in_rules_the_readme_gives_is_the_registrys():
    text = README.read_text()
    counts = [number_word(word) for word in re.findall(r"([a-z-]+) built-ins", text) if word in NUMBER_WORDS]
    assert len(counts) >= 2, "the README no longer counts the built-ins where this test looks"
    assert set(counts) == {sum(rules.is_builtin(name) for name in rules.RULES)}


@pytest.mark.parametrize("command", fastgd_commands())
def test_a_fastgd_command_of_the_readme_is_one_the_command_line_takes(command):
    arguments = shlex.split(command)[1:]
    assert build_parser().parse_args(arguments).command == arguments[0]
