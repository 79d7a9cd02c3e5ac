"""The package's layers, read from its modules' imports: no import circle, and no import running back up.

Every ``import`` and ``from ... import`` of fastgd's own modules counts, at module level or inside a
function: a lazy import that runs back up is still a circle a reader has to follow. ``from pkg import
sub`` counts as an import of the submodule ``pkg.sub`` alone (Python runs ``pkg/__init__.py`` first,
but the reader's trail goes to ``sub``).
"""

import ast
import pathlib

import numpy as np
import pytest

import fastgd

PACKAGE = pathlib.Path(fastgd.__file__).parent

# Lower layers first: a module may import its own layer's and lower layers' modules, never a higher
# layer's. The first matching prefix names a module's layer; the package root only defines
# __version__ and lazy attributes, so any module may read it.
LAYERS = [
    ("fastgd", "fastgd._config", "fastgd.validation", "fastgd.reference", "fastgd.rules.definition"),
    ("fastgd.kernels", "fastgd.machine", "fastgd.threads"),
    ("fastgd.rules", "fastgd.datasets", "fastgd.datafiles", "fastgd.gradcheck", "fastgd.networks",
     "fastgd.calibration"),
    ("fastgd.cuda", "fastgd.models"),
    ("fastgd.optim",),
    ("fastgd.training", "fastgd.functions", "fastgd.optimum"),
    ("fastgd.estimators", "fastgd.network_estimators", "fastgd.landscape", "fastgd.baselines", "fastgd.problems"),
    ("fastgd.sweep.store", "fastgd.sweep.metrics", "fastgd.sweep.stats", "fastgd.sweep.progress",
     "fastgd.sweep.tuning", "fastgd.sweep.solvers", "fastgd.sweep.completeness"),
    ("fastgd.sweep.config",),
    ("fastgd.sweep.plan", "fastgd.sweep.targets"),
    ("fastgd.sweep.runner", "fastgd.sweep.measure", "fastgd.sweep.baselines", "fastgd.sweep"),
    ("fastgd.report",),
    ("fastgd.cli",),
]


def _modules():
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


MODULES = _modules()


def _own_module(name):
    """The fastgd module that ``name`` (a module, or a module's attribute) resolves to."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name if name in MODULES else None


def imports_of(name):
    """The fastgd modules that module ``name`` imports, anywhere in its body."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        found.update(module for module in map(_own_module, targets) if module is not None and module != name)
    return found


def layer_of(name):
    best = None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[1])):
                best = (index, prefix)
    assert best is not None, f"{name} is in no layer: add it to LAYERS"
    return best[0]


def test_every_module_has_a_layer():
    for name in MODULES:
        layer_of(name)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_import_runs_back_up(name):
    upward = sorted(target for target in imports_of(name)
                    if target != "fastgd" and layer_of(target) > layer_of(name))
    assert not upward, f"{name} (layer {layer_of(name)}) imports {upward} from higher layers"


def test_no_import_circle():
    graph = {name: imports_of(name) - {"fastgd"} for name in MODULES}
    visiting, done = [], set()

    def visit(name):
        if name in visiting:
            raise AssertionError("import circle: " + " -> ".join(visiting[visiting.index(name):] + [name]))
        if name in done:
            return
        visiting.append(name)
        for target in sorted(graph[name]):
            if target.startswith(name + "."):
                continue  # a package importing its own submodules is how its namespace is built
            visit(target)
        visiting.pop()
        done.add(name)

    for module in sorted(graph):
        visit(module)


def test_the_checker_sees_an_upward_import_and_a_circle(tmp_path, monkeypatch):
    """The checks above could fail: a module that imports a higher layer, and two that import each other."""
    low, high = tmp_path / "low.py", tmp_path / "high.py"
    low.write_text("def f():\n    from fastgd import cli\n")
    high.write_text("from fastgd.sweep import config\n")
    monkeypatch.setitem(MODULES, "fastgd.kernels.low", low)
    assert "fastgd.cli" in imports_of("fastgd.kernels.low")
    with pytest.raises(AssertionError, match="higher layers"):
        test_no_import_runs_back_up("fastgd.kernels.low")
    circle = tmp_path / "circle.py"
    circle.write_text("from fastgd.sweep import plan\n")
    monkeypatch.setitem(MODULES, "fastgd.sweep.config_circle", circle)
    back = tmp_path / "plan.py"
    back.write_text("from fastgd.sweep import config_circle\n")
    monkeypatch.setitem(MODULES, "fastgd.sweep.plan", back)
    with pytest.raises(AssertionError, match="import circle"):
        test_no_import_circle()


def _public_definitions(tree):
    """The top-level functions and classes a module offers: those in its ``__all__``, else those without a leading
    underscore."""
    exported = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(target, "id", None) == "__all__" for target in node.targets):
            try:
                exported = set(ast.literal_eval(node.value))
            except ValueError:  # built from other lists: every public name counts
                exported = None
    return [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))
            and not node.name.startswith("_") and (exported is None or node.name in exported)]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_each_module_says_what_it_holds_and_each_public_function_its_contract(name):
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    assert ast.get_docstring(tree), f"{name} does not open with a docstring saying what it holds"
    undocumented = [node.name for node in _public_definitions(tree) if not ast.get_docstring(node)]
    assert not undocumented, f"{name}: {undocumented} have no docstring"


@pytest.mark.parametrize("value, integer, real", [
    (3, True, True), (np.int64(3), True, True), (2.5, False, True), (np.float32(2.5), False, True),
    (True, False, False), (np.True_, False, False), ("3", False, False), (None, False, False),
])
def test_one_vocabulary_says_what_a_number_is(value, integer, real):
    """fastgd.validation, which the rules, the configurations, the data sets and the command line share: a bool
    (Python's or NumPy's) is never a number."""
    from fastgd import validation

    assert validation.is_integer(value) is integer and validation.is_real(value) is real
    assert validation.is_seed(value) is (integer and 0 <= value <= validation.MAX_SEED)


def test_the_readme_names_every_layer_entry():
    """README's "Where things live" is the map a new engineer reads: it names every entry of LAYERS, so a module
    added to the layers is added to the map too."""
    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Where things live", 1)[1].split("\n## ", 1)[0]
    entries = [entry for layer in LAYERS for entry in layer if entry != "fastgd"]
    assert [entry for entry in entries if f"`{entry}`" not in section] == []
