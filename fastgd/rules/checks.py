"""Checks of a rule's per-parameter functions when it is registered: the promises of the element API, kept.

:mod:`fastgd.rules.definition` promises that an element function keeps the
parameters' dtype: no float literals (a Python float is a float64 and
promotes float32 arithmetic), no calls but ``math`` functions, ``abs`` and
the user's own helper functions (which are checked the same way), and one
returned value for the parameter and each state slot it takes. Broken, these
promises fail late or not at all: float32 training silently computes in
float64, a CUDA kernel refuses to compile, a wrong count fails inside
generated code with Numba's "failed to unpack". :func:`check_rule` checks
them once, at :func:`fastgd.rules.register`, and raises a one-line
:class:`~fastgd.rules.RuleError` naming the rule, the function and the
offending expression.

Three checks, from cheap to thorough: the source's syntax tree (literals and
calls), a float32 compile of the element alone (the types and the number of
values it returns), and, where numba-cuda and NVIDIA's NVVM are importable, a
PTX compile of the same function as a CUDA device function (no GPU needed;
an element calling ``@njit`` helpers needs CUDA's driver for them, and is
left to the GPU where there is none). The compiles take seconds (the PTX one
most), so a definition that passed leaves a marker beside the generated code,
named by its hash, and is not compiled again on this machine.
"""

import ast
import builtins
import importlib.util
import inspect
import math
import os
import textwrap
import types

from numba import __version__ as numba_version
from numba import types as numba_types
from numba.core.errors import NumbaError

from fastgd.rules.definition import RuleError, _is_library, _parameters

__all__ = ["check_rule", "check_source"]

_ALLOWED_BUILTINS = {"abs"}
_REAL = numba_types.float32  # the dtype a promotion shows in: float64 arithmetic cannot hide in float64


def _fail(rule, problem):
    raise RuleError(f"rule {rule.name!r}: {problem}")


def _python(function):
    return getattr(function, "py_func", function)


def _syntax_tree(python):
    """The function's definition node, or None when its source cannot be read and parsed alone, or holds more
    than one candidate (lambdas of the same parameters on one line)."""
    try:
        source = textwrap.dedent(inspect.getsource(python))
    except (OSError, TypeError):
        return None
    parameters = list(python.__code__.co_varnames[:python.__code__.co_argcount])
    if python.__name__ == "<lambda>":
        found = [node for node in _lambdas(source) if [argument.arg for argument in node.args.args] == parameters]
        return found[0] if len(found) == 1 else None
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    found = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name == python.__name__]
    return found[0] if len(found) == 1 else None


def _lambdas(source):
    """Every lambda in ``source``, lines that need not parse as a whole (a keyword argument of a call): each
    ``lambda`` read as far as it parses."""
    found = []
    start = source.find("lambda")
    while start != -1:
        for end in range(len(source), start, -1):
            try:
                node = ast.parse(source[start:end].strip(), mode="eval").body
            except SyntaxError:
                continue
            if isinstance(node, ast.Tuple) and node.elts:  # "lambda ...: ..., next_keyword" reads as a tuple
                node = node.elts[0]
            if isinstance(node, ast.Lambda):
                found.append(node)
            break
        start = source.find("lambda", start + 1)
    return found


def _resolve(python, node):
    """The object a call's target names (``helper``, ``module.helper``, ``math.sqrt``), or None."""
    if isinstance(node, ast.Name):
        if node.id in python.__code__.co_varnames:
            return None
        if node.id in python.__globals__:
            return python.__globals__[node.id]
        return getattr(builtins, node.id, None)
    if isinstance(node, ast.Attribute):
        owner = _resolve(python, node.value)
        if isinstance(owner, types.ModuleType):
            return getattr(owner, node.attr, None)
    return None


def check_source(rule, function, what, _seen=None):
    """Refuse float literals and calls other than ``math.*``, ``abs`` and the user's helpers in ``function``.

    Helpers it calls are checked the same way, recursively. A function whose
    source cannot be parsed on its own (a lambda sharing a line) is left to
    the compile checks of :func:`check_rule`.
    """
    _seen = set() if _seen is None else _seen
    python = _python(function)
    if python in _seen or not isinstance(python, types.FunctionType):
        return
    _seen.add(python)
    tree = _syntax_tree(python)
    if tree is None:
        return
    parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
    name = python.__name__
    body = tree.body if isinstance(tree.body, list) else [tree.body]  # the decorators are not the element's code
    for node in (node for statement in body for node in ast.walk(statement)):
        if isinstance(node, ast.Constant) and isinstance(node.value, (float, complex)):
            parent = parents.get(node, node)
            _fail(rule, f"the {what} {name} has the float literal {node.value!r} in `{ast.unparse(parent)}`: it "
                        "is a float64 and makes float32 parameters compute in float64 (pass the constant as a "
                        "hyperparameter or a per-step output)")
        if isinstance(node, ast.Call):
            target = _resolve(python, node.func)
            if isinstance(target, types.BuiltinFunctionType) and target is getattr(math, target.__name__, None):
                continue
            if isinstance(node.func, ast.Name) and node.func.id in _ALLOWED_BUILTINS and target is getattr(
                    builtins, node.func.id):
                continue
            helper = _python(target)
            if isinstance(helper, types.FunctionType) and not _is_library(target):
                check_source(rule, helper, what, _seen)
                continue
            _fail(rule, f"the {what} {name} calls `{ast.unparse(node.func)}` in `{ast.unparse(node)}`: an element "
                        "function may call math functions, abs and your own helper functions only (NumPy's "
                        "functions return float64 and do not compile for CUDA)")


def _per_step_types(rule):
    """Output name → the type the element receives it as: boolean for a boolean output, else the element dtype."""
    if rule.per_step is None:
        return {}
    flags = set(rule.flag_names())
    arguments = []
    for parameter in _parameters(rule.per_step.function, "per-step function", rule.name):
        if parameter == "step":
            arguments.append(numba_types.int64)
        elif parameter in flags:
            arguments.append(numba_types.boolean)
        else:  # hyperparameter scalars, scalar state and dtype_eps (Rule._validate allows no other name)
            arguments.append(numba_types.float64)
    returned = _compile(rule, rule.per_step.function, "per-step function", arguments)
    values = list(returned) if isinstance(returned, numba_types.BaseTuple) else [returned]
    outputs = rule.per_step.outputs
    if len(values) != len(outputs):
        _fail(rule, f"its per-step function {_python(rule.per_step.function).__name__} returns {len(values)} "
                    f"value{'s' if len(values) != 1 else ''}, and {len(outputs)} outputs are declared "
                    f"({', '.join(outputs)})")
    return {output: numba_types.boolean if isinstance(value, numba_types.Boolean) else _REAL
            for output, value in zip(outputs, values)}


def _compile(rule, function, what, arguments):
    """The return type of ``function`` compiled alone for ``arguments``, or a one-line RuleError."""
    from fastgd import _config
    from fastgd.rules.compile import _first_line

    dispatcher = _config.jit(_python(function), cache=False)
    try:
        with _config.compile_lock(f"{rule.name}.{_python(function).__name__}{tuple(arguments)}"):
            dispatcher.compile(tuple(arguments))
    except NumbaError as error:
        _fail(rule, f"Numba cannot compile its {what} {_python(function).__name__}: {_first_line(error)}")
    return dispatcher.overloads[tuple(arguments)].signature.return_type


def _element_arguments(rule, function, per_step, extra=()):
    """The float32 argument types of an element (or evaluation) function, by the names it takes."""
    flags = set(rule.flag_names())
    arguments = []
    for parameter in _parameters(function, "element function", rule.name):
        if parameter in flags:
            arguments.append(numba_types.boolean)
        elif parameter in per_step:
            arguments.append(per_step[parameter])
        elif parameter in extra:
            arguments.append(extra[parameter])
        else:
            arguments.append(_REAL)
    return arguments


def _check_returns(rule, function, what, returned, expected_names):
    name = _python(function).__name__
    values = list(returned) if isinstance(returned, numba_types.BaseTuple) else [returned]
    if len(values) != len(expected_names):
        returns = f"its {what} {name} returns {len(values)} value{'s' if len(values) != 1 else ''}"
        if len(expected_names) == 1:
            _fail(rule, f"{returns}; it must return the new parameter alone")
        _fail(rule, f"{returns}; it must return {len(expected_names)}: {', '.join(expected_names)} (the new "
                    "parameter, then each state slot it takes, in that order)")
    for value, returned_name in zip(values, expected_names):
        if value != _REAL:
            _fail(rule, f"its {what} {name} returns {returned_name} as {value} for float32 parameters: it must keep "
                        "the parameters' dtype (a float literal, a float64 global or a NumPy call promotes it; pass "
                        "constants as hyperparameters or per-step outputs)")


def _check_reduction_returns(rule, function, returned, outputs):
    name = _python(function).__name__
    values = list(returned) if isinstance(returned, numba_types.BaseTuple) else [returned]
    if len(values) != len(outputs):
        _fail(rule, f"its reduction function {name} returns {len(values)} value{'s' if len(values) != 1 else ''}; it "
                    f"declares {len(outputs)} output{'s' if len(outputs) != 1 else ''} ({', '.join(outputs)})")
    for value, output in zip(values, outputs):
        if value != _REAL:
            _fail(rule, f"its reduction function {name} returns the term of {output!r} as {value} for float32 "
                        "parameters: each term must be one number of the parameters' dtype")


def _cuda_compiler():
    """numba.cuda's PTX compiler when numba-cuda and NVIDIA's NVVM are importable, else None."""
    try:
        from numba import cuda

        if cuda.config.ENABLE_CUDASIM:  # the simulator runs Python: it compiles nothing to check
            return None
        from numba.cuda.cudadrv import nvvm

        return cuda if nvvm.is_available() else None
    except Exception:  # noqa: BLE001 -- numba-cuda missing or broken: the CPU checks still hold
        return None


# Part of the name of the marker a passed check leaves: bump it when the checks change.
CHECKS_VERSION = 2


def _passed_marker(rule):
    """The file whose existence says ``rule``'s definition passed these checks on this machine, with this Numba
    (and numba-cuda or not): a sweep's workers and later commands then skip the compiles, seconds each."""
    from fastgd.rules.compile import generated_directory

    target = "cuda" if importlib.util.find_spec("numba_cuda") is not None else "cpu"
    return os.path.join(generated_directory(), "checked",
                        f"{rule.hash}-v{CHECKS_VERSION}-numba{numba_version}-{target}")


def check_rule(rule, cached=True):
    """Check a user's rule's element, evaluation and reduction functions (the module docstring); RuleError if not.

    A definition that passed once on this machine is not compiled again (:func:`_passed_marker`) unless
    ``cached`` is False.
    """
    from fastgd.rules.compile import write_source

    marker = _passed_marker(rule)
    if cached and os.path.exists(marker):
        return
    _check(rule)
    try:
        write_source(marker, "")
    except OSError:  # a cache that cannot be written: the next process checks again, nothing worse
        pass


def _check(rule):
    per_step = _per_step_types(rule)
    checked = []
    if rule.element is not None:
        check_source(rule, rule.element, "element function")
        arguments = _element_arguments(rule, rule.element, per_step)
        returned = _compile(rule, rule.element, "element function", arguments)
        _check_returns(rule, rule.element, "element function", returned, ["param", *rule.element_state_order])
        checked.append((rule.element, "element function", arguments))
    if rule.evaluation is not None:
        function = rule.evaluation.function
        check_source(rule, function, "evaluation function")
        extra = {}
        if rule.evaluation.scalars is not None:
            extra = {name: _REAL for name in rule.evaluation.scalars.outputs}
        arguments = _element_arguments(rule, function, per_step, extra)
        returned = _compile(rule, function, "evaluation function", arguments)
        _check_returns(rule, function, "evaluation function", returned, ["param"])
        checked.append((function, "evaluation function", arguments))
    if rule.reduction is not None:
        # its terms are the parameters' dtype too: the generated pass widens each to float64 as it adds it
        function = rule.reduction.function
        check_source(rule, function, "reduction function")
        arguments = _element_arguments(rule, function, per_step)
        returned = _compile(rule, function, "reduction function", arguments)
        _check_reduction_returns(rule, function, returned, rule.reduction.outputs)
    cuda = _cuda_compiler()
    if cuda is None:
        return
    from fastgd.rules.compile import _first_line

    for function, what, arguments in checked:
        try:
            cuda.compile_ptx(_python(function), tuple(arguments), device=True, cc=(7, 0))
        except NumbaError as error:
            _fail(rule, f"its {what} {_python(function).__name__} does not compile for CUDA: {_first_line(error)}")
        except Exception:  # noqa: BLE001 -- e.g. a CPU helper's CUDA twin wants a driver: this machine cannot say
            return
