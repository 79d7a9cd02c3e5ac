"""Calls from compiled code into a ``@jit`` function's own machine code, through a symbol, not by linking its code.

Numba compiles a call from one ``@jit`` function to another by linking the callee's whole optimised LLVM module
into the caller's, then optimising the caller's module and emitting its machine code: the callee's code is
optimised and emitted again in every function that calls it, and in every function that calls those, once per
entry point. :func:`by_symbol` wraps a ``@jit`` function so that compiled callers reach it through a symbol of
its own instead: the callee is compiled (or loaded from the on-disk cache) once per signature, its entry point
registered under that symbol with LLVM's process-wide symbol table (as :mod:`fastgd.kernels.blas` registers
SciPy's BLAS), and a caller's code only declares the symbol and calls it with Numba's calling convention, so
that an exception raised in the callee (a bounds check's IndexError) still reaches the caller's caller.

Each argument type is made canonical before the callee is compiled: a 1-D C-contiguous array, read-only or not,
is passed as the writeable 1-D C array of its dtype (Numba's data model for both is the same structure), any
integer as an int64; so one signature per dtype serves every caller. Other types are passed as they are; a
1-D array that is not C-contiguous is refused at typing.

A caller's cached machine code refers to the symbol by name. Before it is loaded from the cache, the callee must
be loaded and its symbol registered: the call's code adds a hook that does so to the caller's library, Numba runs a
compile result's hooks (``reload_init``) before it loads the result's code, and a caller inherits the hooks of the
callees whose code it links. :mod:`fastgd._config` closes the two gaps Numba leaves: a C callback is cached with its
library's hooks too, and code loaded from the cache keeps its hooks for the callers compiled later that link it.
"""

import hashlib
import inspect

import llvmlite.binding
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

from fastgd import _config

__all__ = ["by_symbol", "canonical_type", "symbol_name"]

# (module, qualified name) -> the @jit dispatcher that by_symbol wrapped: the reload hooks find it here
_DISPATCHERS = {}
# symbol -> the address registered for it in this process
_REGISTERED = {}


def canonical_type(argument):
    """The type the callee is compiled for when a caller passes ``argument`` (a Numba type), see the module's
    docstring; TypingError for a 1-D array that is not C-contiguous."""
    if isinstance(argument, types.Array):
        if argument.layout != "C":
            raise TypingError(f"a function called by symbol takes C-contiguous arrays, got {argument}")
        return types.Array(argument.dtype, argument.ndim, "C")
    if isinstance(argument, types.Integer):
        return types.int64
    if isinstance(argument, types.BooleanLiteral):
        return types.boolean
    return types.unliteral(argument)


def symbol_name(module, qualname, signature):
    """The symbol of ``module.qualname`` compiled for ``signature`` (a tuple of Numba types): the same name in
    every process, unlike Numba's own mangled names."""
    digest = hashlib.sha1(f"{module}.{qualname}{tuple(str(t) for t in signature)}".encode()).hexdigest()[:16]
    return f"fastgd.by_symbol.{qualname}.{digest}"


class _Register:
    """A reload hook (picklable by reference): load ``module.qualname`` for ``signature`` and register its symbol."""

    def __init__(self, module, qualname, signature):
        self.module, self.qualname, self.signature = module, qualname, tuple(signature)

    def _key(self):
        return (self.module, self.qualname, tuple(str(t) for t in self.signature))

    def __eq__(self, other):
        return isinstance(other, _Register) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __call__(self):
        return _compile_and_register(self.module, self.qualname, self.signature)


def _compile_and_register(module, qualname, signature):
    """Compile (or load) the wrapped function for ``signature``, register its symbol; return its compile result."""
    import importlib

    importlib.import_module(module)  # its import wraps the function (by_symbol), filling _DISPATCHERS
    dispatcher = _DISPATCHERS[module, qualname]
    dispatcher.compile(signature)
    result = dispatcher.overloads[signature]
    name = symbol_name(module, qualname, signature)
    if name not in _REGISTERED:
        address = result.library.get_pointer_to_function(result.fndesc.llvm_func_name)
        if not address:
            raise RuntimeError(f"{module}.{qualname}{signature}: its compiled code has no entry point")
        llvmlite.binding.add_symbol(name, address)
        _REGISTERED[name] = address
    return result


def by_symbol(dispatcher):
    """A stand-in for the ``@jit`` function ``dispatcher`` (of the same parameters) that compiled code calls
    through a symbol, see the module's docstring. It is an intrinsic: compiled code alone can call it.

    Where this Numba's cached code cannot carry the hooks that register the symbols
    (:data:`fastgd._config.RELOAD_HOOKS_KEPT` is False), ``dispatcher`` itself, which Numba links as usual."""
    if not _config.RELOAD_HOOKS_KEPT:
        return dispatcher
    function = dispatcher.py_func
    module, qualname = function.__module__, function.__qualname__
    _DISPATCHERS[module, qualname] = dispatcher

    def type_call(arguments):
        signature = tuple(canonical_type(argument) for argument in arguments)
        return_type = _compile_and_register(module, qualname, signature).signature.return_type

        def codegen(context, builder, call_signature, values):
            context.active_code_library._reload_init.add(_Register(module, qualname, signature))
            function_type = context.call_conv.get_function_type(return_type, signature)
            callee = cgutils.get_or_insert_function(builder.module, function_type,
                                                    symbol_name(module, qualname, signature))
            # arrays pass as they are (one data model for every 1-D C array of a dtype); scalars are cast
            cast = [value if isinstance(given, types.Array) else context.cast(builder, value, given, wanted)
                    for value, given, wanted in zip(values, call_signature.args, signature)]
            status, value = context.call_conv.call_function(builder, callee, return_type, signature, cast)
            with cgutils.if_unlikely(builder, status.is_error):
                context.call_conv.return_status_propagate(builder, status)
            return value

        return return_type(*arguments), codegen

    # the intrinsic's typer takes the function's own parameters, so that calls fold their arguments as the
    # function's would (a typer of *arguments would get them packed in one tuple)
    parameters = ", ".join(inspect.signature(function).parameters)
    namespace = {}
    exec(f"def {function.__name__}(typingctx, {parameters}):\n    return type_call(({parameters},))\n",
         {"type_call": type_call}, namespace)
    call = intrinsic(namespace[function.__name__])
    call.__doc__ = function.__doc__
    return call
