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

:func:`on_demand` is the same call for a function that need not be compiled when its caller is (issue 26: a network's
layer kinds, of which a network uses a few): its parameters' types are declared per dtype, so a caller is typed and
compiled without it, and the caller calls through a *slot*, a pointer-sized cell registered under a symbol of its
own, which :func:`prepare` fills with the function's entry point once compiled (or loaded) for a dtype. A call
that finds its slot empty asks Python to fill it first (:func:`_prepare_from_compiled_code`, a C callback that takes
the GIL), and raises a RuntimeError naming the function where that fails: a kind nobody prepared is compiled then,
never called through a null pointer. A cached caller's hooks register the slots alone, compiling nothing. (The
callback waits for the GIL: a ``prange`` loop of a function compiled without ``nogil`` that runs an unprepared kind
on a worker thread would wait forever, its own thread holding the GIL; fastgd's functions are compiled ``nogil``, and
its Python entry points prepare first.)
"""

import ctypes
import hashlib
import importlib
import inspect
import sys
import traceback

import llvmlite.binding
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

from fastgd import _config

__all__ = ["by_symbol", "on_demand", "prepare", "canonical_type", "symbol_name", "slot_name"]

# (module, qualified name) -> the @jit dispatcher that by_symbol wrapped: the reload hooks find it here
_DISPATCHERS = {}
# symbol -> the address registered for it in this process
_REGISTERED = {}
# slot symbol -> the cell (ctypes.c_void_p) registered under it in this process; a cell's address -> what it calls
_SLOTS = {}
_SLOT_OWNERS = {}
# (module, qualname, signature) of each function that compiled code asked to be prepared (a slot it found empty)
PREPARED_FROM_COMPILED_CODE = []
# (module, qualname, Numba float type) of each function prepare() filled the slot of
_PREPARED = set()


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


def slot_name(module, qualname, signature):
    """The symbol of the slot through which compiled code calls :func:`on_demand`'s ``module.qualname`` for
    ``signature``: the same name in every process."""
    return symbol_name(module, qualname, signature).replace("fastgd.by_symbol.", "fastgd.on_demand.", 1)


class _Register:
    """A reload hook (picklable by reference): load ``module.qualname`` for ``signature`` and register its symbol."""

    def __init__(self, module, qualname, signature):
        self.module, self.qualname, self.signature = module, qualname, tuple(signature)

    def _key(self):
        return (type(self).__name__, self.module, self.qualname, tuple(str(t) for t in self.signature))

    def __eq__(self, other):
        return isinstance(other, _Register) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __call__(self):
        return _compile_and_register(self.module, self.qualname, self.signature)


class _RegisterSlot(_Register):
    """A reload hook: register the slot of :func:`on_demand`'s ``module.qualname`` for ``signature`` (empty, or
    as this process filled it), compiling nothing."""

    def __call__(self):
        _slot(self.module, self.qualname, self.signature)


def _compiled(module, qualname, signature):
    """The wrapped function's compile result for ``signature``, compiled or loaded from the cache."""
    importlib.import_module(module)  # its import wraps the function (by_symbol, on_demand), filling _DISPATCHERS
    dispatcher = _DISPATCHERS[module, qualname]
    dispatcher.compile(signature)
    return dispatcher.overloads[signature]


def _compile_and_register(module, qualname, signature):
    """Compile (or load) the wrapped function for ``signature``, register its symbol; return its compile result."""
    result = _compiled(module, qualname, signature)
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
            return _call(context, builder, callee, return_type, signature, call_signature, values)

        return return_type(*arguments), codegen

    return _intrinsic_of(function, type_call)


def _call(context, builder, callee, return_type, signature, call_signature, values):
    """Call ``callee`` (compiled for ``signature``) with Numba's calling convention from a caller that passes
    ``values`` of ``call_signature``'s types; an exception it raised goes on to the caller's caller."""
    # arrays pass as they are (one data model for every 1-D C array of a dtype); scalars are cast
    cast = [value if isinstance(given, types.Array) else context.cast(builder, value, given, wanted)
            for value, given, wanted in zip(values, call_signature.args, signature)]
    status, value = context.call_conv.call_function(builder, callee, return_type, signature, cast)
    with cgutils.if_unlikely(builder, status.is_error):
        context.call_conv.return_status_propagate(builder, status)
    return value


def _intrinsic_of(function, type_call):
    """An intrinsic of ``function``'s parameters whose typing is ``type_call(arguments)``."""
    # the intrinsic's typer takes the function's own parameters, so that calls fold their arguments as the
    # function's would (a typer of *arguments would get them packed in one tuple)
    parameters = ", ".join(inspect.signature(function).parameters)
    namespace = {}
    exec(f"def {function.__name__}(typingctx, {parameters}):\n    return type_call(({parameters},))\n",
         {"type_call": type_call}, namespace)
    call = intrinsic(namespace[function.__name__])
    call.__doc__ = function.__doc__
    return call


def _slot(module, qualname, signature):
    """The cell of :func:`on_demand`'s ``module.qualname`` for ``signature``, registered under
    :func:`slot_name` (made, empty, the first time)."""
    name = slot_name(module, qualname, signature)
    cell = _SLOTS.get(name)
    if cell is None:
        cell = ctypes.c_void_p(0)
        llvmlite.binding.add_symbol(name, ctypes.addressof(cell))
        _SLOTS[name] = cell
        _SLOT_OWNERS[ctypes.addressof(cell)] = (module, qualname, tuple(signature))
    return cell


def _fill(module, qualname, signature):
    """The entry point of ``module.qualname`` for ``signature``, compiled (or loaded) and put in its slot if it is
    not there yet."""
    cell = _slot(module, qualname, signature)
    if not cell.value:
        with _config.compile_lock(f"{module}.{qualname}{tuple(str(t) for t in signature)}"):
            result = _compiled(module, qualname, signature)
            address = result.library.get_pointer_to_function(result.fndesc.llvm_func_name)
        if not address:
            raise RuntimeError(f"{module}.{qualname}{signature}: its compiled code has no entry point")
        cell.value = address
    return cell.value


@ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p)
def _prepare_from_compiled_code(cell_address):
    """Compiled code's way to fill a slot it found empty (a plan whose kinds nobody prepared): the entry point, or
    0 where it cannot be had (the reason printed; the call then raises a RuntimeError naming the function). ctypes
    takes the GIL around it, so any thread may call it; no exception may cross into the compiled code."""
    try:
        owner = _SLOT_OWNERS[cell_address]
        PREPARED_FROM_COMPILED_CODE.append(owner)
        return _fill(*owner)
    except BaseException:  # noqa: BLE001 (printed, then raised by the caller as a RuntimeError)
        traceback.print_exc(file=sys.stderr)
        return 0


# compiled code reaches the callback by this symbol, the same in every process
_PREPARE_SYMBOL = "fastgd.on_demand.prepare"
llvmlite.binding.add_symbol(_PREPARE_SYMBOL, ctypes.cast(_prepare_from_compiled_code, ctypes.c_void_p).value)


def _external_global(module, value_type, name):
    """The declaration of the global ``name`` (defined outside the module) in the LLVM ``module``."""
    existing = module.globals.get(name)
    return existing if existing is not None else ir.GlobalVariable(module, value_type, name)


def on_demand(signature_of, return_type=types.none):
    """A decorator: :func:`by_symbol` for a ``@jit`` function that is compiled when :func:`prepare` (or its first
    call from compiled code) asks, not when a caller is (see the module's docstring).

    ``signature_of(dtype)`` gives the canonical parameter types (:func:`canonical_type`) for a Numba float type
    (``types.float32``, ``types.float64``); every call must match one of these, and the function returns
    ``return_type``. Where :data:`fastgd._config.RELOAD_HOOKS_KEPT` is False, the dispatcher itself, which Numba
    links into its callers (compiled with them)."""

    def wrap(dispatcher):
        if not _config.RELOAD_HOOKS_KEPT:
            return dispatcher
        function = dispatcher.py_func
        module, qualname = function.__module__, function.__qualname__
        _DISPATCHERS[module, qualname] = dispatcher
        declared = {tuple(signature_of(real)): real for real in (types.float32, types.float64)}

        def type_call(arguments):
            signature = tuple(canonical_type(argument) for argument in arguments)
            if signature not in declared:
                raise TypingError(f"{module}.{qualname} takes one of {sorted(map(str, declared))}, "
                                  f"got {signature}")
            message = (f"fastgd: {module}.{qualname} for {declared[signature]} could not be compiled when compiled "
                       "code first called it (the reason is printed above)")

            def codegen(context, builder, call_signature, values):
                library = context.active_code_library
                _slot(module, qualname, signature)  # registered before this code is finalised, which resolves it
                library._reload_init.add(_RegisterSlot(module, qualname, signature))
                pointer = ir.IntType(8).as_pointer()
                cell = _external_global(builder.module, pointer, slot_name(module, qualname, signature))
                with cgutils.if_unlikely(builder, cgutils.is_null(builder, builder.load(cell))):
                    ask = cgutils.get_or_insert_function(builder.module, ir.FunctionType(pointer, [pointer]),
                                                         _PREPARE_SYMBOL)
                    filled = builder.call(ask, [builder.bitcast(cell, pointer)])
                    with cgutils.if_unlikely(builder, cgutils.is_null(builder, filled)):
                        context.call_conv.return_user_exc(builder, RuntimeError, (message,))
                function_type = context.call_conv.get_function_type(return_type, signature)
                callee = builder.bitcast(builder.load(cell), function_type.as_pointer())
                return _call(context, builder, callee, return_type, signature, call_signature, values)

            return return_type(*arguments), codegen

        call = _intrinsic_of(function, type_call)
        call._on_demand = (module, qualname, signature_of)
        return call

    return wrap


def prepare(function, dtype):
    """Compile (or load from the cache) :func:`on_demand`'s ``function`` for ``dtype`` (a NumPy float dtype) and
    fill its slot, if that is not done yet; nothing for a plain dispatcher (Numba links it into its callers)."""
    import numpy as np

    owner = getattr(function, "_on_demand", None)
    if owner is None:
        return
    module, qualname, signature_of = owner
    real = types.float32 if np.dtype(dtype) == np.float32 else types.float64
    if (module, qualname, real) not in _PREPARED:  # the methods that run a plan prepare it at every call
        _fill(module, qualname, tuple(signature_of(real)))
        _PREPARED.add((module, qualname, real))
