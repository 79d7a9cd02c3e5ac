"""The README's GPU example, read from the README, runs as written: under the simulator on tiny data, or on a GPU.

Under the simulator every CUDA thread is a Python thread, so the example's sizes
are replaced by small ones (``SMALLER``); each replaced text must be in the
example once, so an edited example fails here until this table follows it.
"""

import warnings

import numpy as np

from fastgd import MLPClassifier
from readme_examples import blocks, substituted

SMALLER = [
    ("size=1_000_000", "size=40"),
    ("hidden_layer_sizes=(32,), max_iter=20", "hidden_layer_sizes=(4,), max_iter=2"),
    ("clf.fit(digits.X_train, digits.y_train)", "clf.fit(digits.X_train[:30], digits.y_train[:30])"),
]


def test_the_readme_gpu_example_runs_and_does_what_it_says():
    (block,) = [block for block in blocks("python") if block.heading == "On an NVIDIA GPU"]
    namespace = {"__name__": "__main__"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # two epochs do not converge
        exec(compile(substituted(block.source, SMALLER), "README.md (GPU example)", "exec"), namespace)
    theta = namespace["theta"]
    # Adam's first step moves each parameter by lr against its gradient's sign (bias-corrected m / sqrt(v) = ±1)
    np.testing.assert_allclose(namespace["params"].copy_to_host(), theta - 1e-3 * np.sign(theta), rtol=1e-5)
    clf, digits = namespace["clf"], namespace["digits"]
    assert clf.optimizer_.device == "cuda" and len(clf.loss_curve_) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        on_cpu = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(digits.X_train[:30],
                                                                                        digits.y_train[:30])
    np.testing.assert_allclose(clf.loss_curve_, on_cpu.loss_curve_, rtol=1e-10)
