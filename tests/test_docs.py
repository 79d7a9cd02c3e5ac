"""Every example in a docstring runs and prints what it says."""

import doctest
import importlib
import pkgutil

import pytest

import fastgd

MODULES = sorted(
    name for _, name, _ in pkgutil.walk_packages(fastgd.__path__, "fastgd.")
    if not name.startswith(("fastgd.cuda", "fastgd.report", "fastgd.sweep", "fastgd.cli"))
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    failures, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert failures == 0
