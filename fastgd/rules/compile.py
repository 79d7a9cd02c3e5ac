r"""Compiled code derived from a :class:`~fastgd.rules.Rule`: kernels, packed steps, training entry points.

For each rule and *variant* (the values of its flags) the generator writes a
small Python module, named by the rule's hash and the variant, into
:func:`generated_directory`, then compiles its functions with fastgd's Numba
flags. Numba's on-disk cache keys code on its source file, so a file per
definition makes ``cache=True`` work for every rule, a user's included, and a
changed definition never loads stale machine code. The module holds:

``loop_scalars``
    What a step needs from the step count: the per-step function's outputs,
    the decoupled decay factor and new scalar state, in float64. The CUDA
    launcher computes it on the host; the CPU functions below compute the same
    lines inline. A variant with a reduction pass has it in two halves around
    the device's sums: ``reduction_inputs``, then ``loop_scalars(..., *sums)``
    with the finish.
``kernel`` / ``kernel_parallel``
    The public kernel (``fastgd.rules.kernels.<rule>``): ``(params, grad, *state
    arrays, step, *scalar state, *hyperparameter scalars)``; returns the new
    scalar state, if the rule has any. The per-step function, then the
    reduction's pass over the vector and its finish (see
    :class:`~fastgd.rules.Reduction`), then the loop over the vector (``range`` /
    ``prange``) calling the element function with the composed weight decay;
    flags are literals, absent state slots zeros.
``packed_ascent_into`` / ``packed_ascent_into_parallel`` / ``packed_ascent``
    (A rule with a :class:`~fastgd.rules.Closure` only.) ``packed_ascent_into(params,
    grad, out, states, aux, hyper, counters, layout)`` writes the closure's
    evaluation point into ``out`` from ``params`` and ``grad``, the gradient at
    ``params``: the closure's reduction over the vector, its finish, then
    ``ascent`` element by element, in one pass that reads θ and writes the
    point. It does not count a step. Its ``prange`` twin gives the same bits.
    ``packed_ascent``, ``packed_step``'s signature, is the first with ``out`` =
    ``params`` (in place). The compiled epochs call the first two
    (:func:`ascent_signature`) and evaluate the gradient at ``out``; the
    optimizer classes the third, then restore ``params``.
``packed_step`` / ``packed_step_parallel``
    One uniform signature for every rule, ``(params, grad, states, aux,
    hyper, counters, layout)``: state slots as the rows of one 2-D array,
    hyperparameters as a float64 vector (``lr`` first, so a schedule can set
    it), ``counters = [step, *scalar state]``. The optimizer classes call it,
    and compiled as a C callback (``numba.cfunc``) for each dtype it is what
    compiled training loops take as a first-class function: they are
    compiled once per dtype for every rule, and a rule compiles only its own
    code.

Nothing is compiled before it is called, and then only for the dtype used.
"""

import contextlib
import hashlib
import importlib.util
import os
import sys
import tempfile
import threading

import numba
import numpy as np
from numba import types
from numba.core.errors import NumbaError
from numba.extending import overload

from fastgd import _config
from fastgd.kernels.mlp import machine_epsilon
from fastgd.rules.definition import REDUCTION_BLOCK, TENSOR_NAMES, RuleError, _parameters

__all__ = ["CompiledVariant", "ascent_signature", "compiled", "generated_directory", "packed_step_signature",
           "to_element"]


# --- scalars as element code takes them --------------------------------------------------------

def to_element(value, real):
    """``value`` in the parameters' dtype ``real``; booleans stay booleans. Usable in compiled code."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    return real(value)


@overload(to_element, inline="always")
def _to_element(value, real):
    if isinstance(value, types.Boolean):
        return lambda value, real: value
    return lambda value, real: real(value)


def packed_step_signature(dtype):
    """The Numba signature of every rule's ``packed_step`` as a C callback for parameters of ``dtype``."""
    real = numba.from_dtype(np.dtype(dtype))
    vector, matrix = types.Array(real, 1, "C"), types.Array(real, 2, "C")
    doubles = types.Array(types.float64, 1, "C")
    return types.void(vector, vector, matrix, vector, doubles, doubles, types.Array(types.int64, 2, "C"))


def ascent_signature(dtype):
    """The Numba signature of a closure rule's ``packed_ascent_into`` as a C callback (:meth:`CompiledVariant.
    ascent_entry`): ``packed_step``'s with the evaluation point ``out`` (θ's size) after ``grad``."""
    real = numba.from_dtype(np.dtype(dtype))
    vector, matrix = types.Array(real, 1, "C"), types.Array(real, 2, "C")
    doubles = types.Array(types.float64, 1, "C")
    return types.void(vector, vector, vector, matrix, vector, doubles, doubles, types.Array(types.int64, 2, "C"))


# --- where generated modules live ------------------------------------------------------------

def generated_directory():
    """Where generated rule modules are written: ``FASTGD_GENERATED_DIR``, else beside Numba's cache.

    With ``NUMBA_CACHE_DIR`` set, ``<it>/fastgd-generated``; otherwise the user's
    cache directory (``$XDG_CACHE_HOME`` or ``~/.cache``) under ``fastgd/generated``,
    or the temporary directory when that cannot be written.
    """
    explicit = os.environ.get("FASTGD_GENERATED_DIR")
    if explicit:
        return explicit
    if numba.config.CACHE_DIR:
        return os.path.join(numba.config.CACHE_DIR, "fastgd-generated")
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or os.path.expanduser("~")
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    directory = os.path.join(base, "fastgd", "generated")
    try:
        os.makedirs(directory, exist_ok=True)
        if os.access(directory, os.W_OK):
            return directory
    except OSError:
        pass
    return os.path.join(tempfile.gettempdir(), f"fastgd-generated-{os.getuid() if hasattr(os, 'getuid') else 0}")


# --- the generated source ----------------------------------------------------------------------

# Running sums per block of a closure's reduction (:meth:`_Plan.ascent_source`); the pairwise addition at a block's
# end is written for eight.
_LANES = 8

def _unique(names):
    return list(dict.fromkeys(names))


class _Plan:
    """What the generated code binds, for one rule and one set of flags."""

    def __init__(self, rule, flags):
        self.rule, self.flags = rule, dict(flags)
        self.present = [name for name, slot in rule.state.items() if slot.when is None or self.flags[slot.when]]
        self.hyper_names = list(rule.scalar_names)
        self.learning_rates = list(rule.learning_rates)
        self.scalar_state = list(rule.scalar_state)
        self.outputs = list(rule.per_step.outputs) if rule.per_step else []
        self.element_parameters = rule.element_parameters
        self.element_state = rule.element_state_order
        self.tensor = rule.per_tensor
        self.tensor_parameters = rule.tensor_parameters() if self.tensor is not None else []
        decay = rule.weight_decay
        self.decay_name, self.decay_mode = None, None
        if decay is not None:
            name, spec = decay
            decoupled = spec.mode == "decoupled" or (spec.decoupled_when and self.flags[spec.decoupled_when])
            self.decay_name, self.decay_mode = name, "decoupled" if decoupled else spec.mode
        # the reduction: declared (its sums are names in scope) and taken by this variant (else they are 0)
        self.reduction = rule.reduction
        self.reduces = rule.reduces(self.flags)
        self.reduction_parameters = ([] if self.reduction is None else
                                     _parameters(self.reduction.function, "reduction function", rule.name))
        # the scalars the vector code takes, in the parameters' dtype: the element's and the
        # per-tensor function's hyperparameters and per-step outputs, and the weight decay's
        taken = [name for name in self.element_parameters[2:] + self.tensor_parameters[2:]
                 if name not in rule.state and name not in self.flags and name not in TENSOR_NAMES]
        if self.decay_mode == "coupled":
            taken.append(self.decay_name)
        elif self.decay_mode in ("decoupled", "proximal"):
            taken.append("_decay_factor")
        self.loop_scalars = _unique(taken)
        # the reduction function's scalars, in the parameters' dtype under names of their own (the finish takes
        # the float64 ones)
        self.reduction_scalars = _unique(name for name in self.reduction_parameters[2:]
                                         if name not in rule.state and name not in self.flags)
        step_parameters = ([] if rule.per_step is None
                           else _parameters(rule.per_step.function, "per-step function", rule.name))
        finish_parameters = ([] if self.reduction is None or self.reduction.finish is None else
                             _parameters(self.reduction.finish.function, "reduction's finish function", rule.name))
        self.needs_eps = "dtype_eps" in step_parameters + self.tensor_parameters + finish_parameters
        # a rule whose every tensor goes to its per-tensor function has no loop for prange to share out
        self.has_parallel_loop = (self.tensor is None or self.tensor.where == "matrices"
                                  or self.decay_mode == "decoupled")

    def literal(self, name):
        return repr(bool(self.flags[name]))

    def _read(self):
        """Lines reading ``_param`` and ``_grad`` at ``_i``, the gradient with a coupled decay added."""
        lines = ["_param = params[_i]", "_grad = grad[_i]"]
        if self.decay_mode == "coupled":
            lines.append(f"if {self.decay_name} != 0:")
            lines.append(f"    _grad = _grad + {self.decay_name} * _param")
        return lines

    def body(self, indent):
        """The element's loop body over index ``_i``: the same text for the CPU and for CUDA."""
        lines = self._read()
        if self.decay_mode == "decoupled":
            lines.append("_param = _param * _decay_factor")
        arguments = ["_param", "_grad"]
        for name in self.element_parameters[2:]:
            if name in self.rule.state:
                arguments.append(f"{name}[_i]" if name in self.present else "_zero")
            elif name in self.flags:
                arguments.append(self.literal(name))
            else:
                arguments.append(name)
        results = ["_param"] + [f"_new_{name}" for name in self.element_state]
        lines.append(f"{', '.join(results)} = element({', '.join(arguments)})")
        if self.decay_mode == "proximal":
            lines.append("_param = _param / _decay_factor")
        lines.append("params[_i] = _param")
        lines += [f"{name}[_i] = _new_{name}" for name in self.element_state if name in self.present]
        return "\n".join(" " * indent + line for line in lines)

    def tensor_call(self):
        """The per-tensor function's call on the tensor from ``_offset`` to ``_end`` (aux from ``_aux_offset``)."""
        arguments = ["params[_offset:_end]", "grad[_offset:_end]"]
        for name in self.tensor_parameters[2:]:
            if name in self.rule.state:
                arguments.append(f"{name}[_offset:_end]" if name in self.present else "params[:0]")
            elif name == "aux":
                arguments.append("aux[_aux_offset:_aux_offset + _aux_size]")
            elif name == "tensor":
                arguments.append("_s")
            elif name in self.flags:
                arguments.append(self.literal(name))
            else:
                arguments.append(name)
        return f"per_tensor({', '.join(arguments)})"

    def per_step_lines(self, iterate=None):
        """Float64 lines: the per-step outputs and the decay factor, then (``iterate``: ``range`` or ``prange``)
        the reduction's pass and its finish, from the names in scope."""
        lines = []
        if self.rule.per_step is not None:
            arguments = [self.literal(name) if name in self.flags else name
                         for name in _parameters(self.rule.per_step.function, "per-step function", self.rule.name)]
            lines.append(f"{', '.join(self.outputs)} = per_step({', '.join(arguments)})")
        if self.decay_mode == "decoupled":
            lines.append(f"_decay_factor = 1.0 - lr * {self.decay_name}")
        elif self.decay_mode == "proximal":
            lines.append(f"_decay_factor = 1.0 + lr * {self.decay_name}")
        if self.reduction is not None:
            lines += self.reduction_lines(iterate)
        return lines

    def host_reduction_sources(self):
        """For a variant with a reduction pass, the host halves of its CUDA step (:mod:`fastgd.cuda.rules`).

        ``reduction_inputs(step, dtype_eps, *scalar state, *hyperparameters)`` gives, in float64, the scalars
        the reduction function takes (the device sums its terms); ``loop_scalars(..., *sums)`` then takes the
        sums, runs the finish and returns the new scalar state and the loop's scalars, as ``loop_scalars`` does
        for a variant without one. Both run the same per-step lines as the CPU kernel.
        """
        parameters = ["step", "dtype_eps", *self.scalar_state, *self.hyper_names]
        before = self.per_step_lines(iterate="given")
        inputs = before[:len(before) - len(self.reduction_lines("given"))]  # all but the finish
        coupled = [self.decay_name] if self.decay_mode == "coupled" else []
        returned = [*self.reduction_scalars, *coupled]
        first = [f"def reduction_inputs({', '.join(parameters)}):"] + [f"    {line}" for line in inputs]
        first.append(f"    return ({', '.join(returned)}{',' if len(returned) == 1 else ''})")
        scalars = [*self.scalar_state, *self.loop_scalars]
        second = [f"def loop_scalars({', '.join(parameters + list(self.reduction.outputs))}):"]
        second += [f"    {line}" for line in before]
        second.append(f"    return ({', '.join(scalars)}{',' if len(scalars) == 1 else ''})")
        return "\n".join(first) + "\n\n\n" + "\n".join(second)

    def reduction_lines(self, iterate):
        """The sums over every parameter, block by block in order (see :data:`REDUCTION_BLOCK`), then the finish.

        The ``prange`` form sums each block in a thread into a row of block sums, then adds the rows in order:
        the serial form's additions, bit for bit, whatever the number of threads. That row array (blocks ×
        sums float64, 8 bytes per 512 parameters per sum) is the one allocation of a step, and only of the
        ``prange`` form, which runs above ``PARALLEL_THRESHOLD`` parameters; the serial form allocates nothing.
        """
        reduction, sums = self.reduction, list(self.reduction.outputs)
        if iterate == "given":  # the sums are arguments (the CUDA step's host half)
            lines = []
        elif not self.reduces:
            lines = [f"{name} = 0.0" for name in sums]
        else:
            lines = ["_real = params.dtype.type"]
            lines += [f"_r_{name} = to_element({name}, _real)" for name in self.reduction_scalars]
            inner = self._read() + [self.reduction_call("_real(0.0)")]
            inner += [f"_p{k} += float(_t{k})" for k in range(len(sums))]
            block = [f"_b = _k * {REDUCTION_BLOCK}", f"_e = min(_b + {REDUCTION_BLOCK}, params.size)"]
            block += [f"_p{k} = 0.0" for k in range(len(sums))]
            block += ["for _i in range(_b, _e):"] + [f"    {line}" for line in inner]
            lines.append(f"_blocks = (params.size + {REDUCTION_BLOCK - 1}) // {REDUCTION_BLOCK}")
            lines += [f"{name} = 0.0" for name in sums]
            if iterate == "prange":
                lines.append(f"_block_sums = np.empty((_blocks, {len(sums)}))")
                lines.append("for _k in prange(_blocks):")
                lines += [f"    {line}" for line in block]
                lines += [f"    _block_sums[_k, {k}] = _p{k}" for k in range(len(sums))]
                lines.append("for _k in range(_blocks):")
                lines += [f"    {name} += _block_sums[_k, {k}]" for k, name in enumerate(sums)]
            else:
                lines.append("for _k in range(_blocks):")
                lines += [f"    {line}" for line in block]
                lines += [f"    {name} += _p{k}" for k, name in enumerate(sums)]
        if reduction.finish is not None:
            arguments = [self.literal(name) if name in self.flags else name
                         for name in _parameters(reduction.finish.function, "reduction's finish function",
                                                 self.rule.name)]
            outputs = reduction.finish.outputs
            lines.append(f"{', '.join(outputs)} = finish({', '.join(arguments)})")
        return lines

    def reduction_call(self, zero):
        """The line calling the reduction function at ``_i`` into ``_t0, _t1, …``: its scalars as ``_r_<name>``,
        an absent state slot as ``zero``. The same text for the CPU and for CUDA."""
        arguments = ["_param", "_grad"]
        for name in self.reduction_parameters[2:]:
            if name in self.rule.state:
                arguments.append(f"{name}[_i]" if name in self.present else zero)
            elif name in self.flags:
                arguments.append(self.literal(name))
            else:
                arguments.append(f"_r_{name}")
        terms = [f"_t{k}" for k in range(len(self.reduction.outputs))]
        return f"{', '.join(terms)} = reduction({', '.join(arguments)})"

    def loop_scalars_source(self):
        """``loop_scalars(step, dtype_eps, *scalar state, *hyperparameters)``: new scalar state, then the loop's
        scalars."""
        parameters = ["step", "dtype_eps", *self.scalar_state, *self.hyper_names]
        returned = [*self.scalar_state, *self.loop_scalars]
        lines = [f"def loop_scalars({', '.join(parameters)}):"] + [f"    {line}" for line in self.per_step_lines()]
        lines.append(f"    return ({', '.join(returned)}{',' if len(returned) == 1 else ''})")
        return "\n".join(lines)

    def vector_lines(self, iterate):
        """The loop scalars in the parameters' dtype, then the pass over the vector (or its tensors)."""
        lines = ["_real = params.dtype.type", "_zero = _real(0.0)"]
        lines += [f"{name} = to_element({name}, _real)" for name in self.loop_scalars]
        if self.tensor is None:
            lines.append(f"for _i in {iterate}(params.size):")
            return "\n".join("    " + line for line in lines) + "\n" + self.body(8)
        aux_size = "aux_size(rows, columns, ndim)" if self.tensor.aux_size is not None else "0"
        lines += ["_aux_offset = 0", "for _s in range(layout.shape[0]):",
                  "    _offset = layout[_s, 0]", "    ndim = layout[_s, 1]", "    rows = layout[_s, 2]",
                  "    columns = layout[_s, 3]", "    _end = _offset + rows * columns",
                  f"    _aux_size = {aux_size}"]
        if self.tensor.where == "matrices":
            lines.append("    if ndim == 2:")
        else:
            lines.append("    if True:")
        if self.decay_mode == "decoupled":
            lines += [f"        for _i in {iterate}(_offset, _end):",
                      "            params[_i] = params[_i] * _decay_factor"]
        lines.append(f"        {self.tensor_call()}")
        text = "\n".join("    " + line for line in lines)
        if self.tensor.where == "matrices":
            text += f"\n        else:\n            for _i in {iterate}(_offset, _end):\n" + self.body(16)
        return text + "\n        _aux_offset += _aux_size"

    def hyper_expressions(self, wrap="{}"):
        """Each hyperparameter scalar as a packed step reads it from ``hyper``, each read wrapped in ``wrap``.

        ``hyper`` ends with the batch's loss (for a rule that takes it, :attr:`fastgd.rules.Rule.uses_loss`) and the
        schedule's factor, which scales every learning rate.
        """
        scale = wrap.format(f"hyper[{len(self.hyper_names) + 1}]")
        reads = [wrap.format(f"hyper[{k}]") for k in range(len(self.hyper_names))]
        return [f"{read} * {scale}" if name in self.learning_rates else read
                for read, name in zip(reads, self.hyper_names)]

    @property
    def kernel_parameters(self):
        tensors = ["aux", "layout"] if self.tensor is not None else []
        loss = ["loss"] if self.rule.uses_loss else []
        return ["params", "grad", *self.present, *tensors, "step", *loss, *self.scalar_state, *self.hyper_names]

    def prologue(self):
        return "    dtype_eps = machine_epsilon(params)\n" if self.needs_eps else ""

    def cpu_source(self, header):
        """The module: ``loop_scalars``, ``kernel``, ``packed_step``, their ``prange`` twins and ``evaluate``.

        Each function is written out whole rather than calling the others:
        Numba compiles every function on its own and optimises a callee's code
        again inside each caller, so one body per entry point compiles fastest.
        """
        returned = f"    return {', '.join(self.scalar_state)}\n" if self.scalar_state else ""
        unpack = [f"{name} = counters[{1 + k}]" for k, name in enumerate(self.scalar_state)]
        unpack += [f"{name} = {value}" for name, value in zip(self.hyper_names, self.hyper_expressions())]
        loss = [f"loss = hyper[{len(self.hyper_names)}]"] if self.rule.uses_loss else []
        unpack += [f"{name} = states[{row}]" for row, name in enumerate(self.present)]
        store = "".join(f"    counters[{1 + k}] = {name}\n" for k, name in enumerate(self.scalar_state))
        # the CUDA launcher's host scalars (a variant with a reduction pass has them in two halves, around its sums;
        # a rule taking the loss has none: the CUDA path refuses it)
        parts = [header] + ([] if self.rule.uses_loss else
                            [self.host_reduction_sources() if self.reduces else self.loop_scalars_source()])
        for suffix, iterate in (("", "range"), ("_parallel", "prange")):
            per_step = self.prologue() + "".join(f"    {line}\n" for line in self.per_step_lines(iterate))
            vector = self.vector_lines(iterate)
            parts.append(f"def kernel{suffix}({', '.join(self.kernel_parameters)}):\n{per_step}{vector}\n{returned}")
            parts.append(f"def packed_step{suffix}(params, grad, states, aux, hyper, counters, layout):\n"
                         f"    counters[0] += 1.0\n"
                         f"    step = np.int64(counters[0])\n"
                         + "".join(f"    {line}\n" for line in unpack + loss) + per_step + store + vector + "\n")
        if self.rule.evaluation is not None:
            parts.append(self.evaluation_source())
        if self.rule.closure is not None:
            parts.append(self.ascent_source(unpack[:len(self.scalar_state) + len(self.hyper_names)]))
        return "\n\n\n".join(part.rstrip() for part in parts) + "\n"

    def ascent_source(self, unpack):
        """``packed_ascent_into(params, grad, out, states, aux, hyper, counters, layout)``: the closure's evaluation
        point into ``out`` (the reduction's blocks summed in the order :meth:`reduction_lines` sums them);
        ``packed_ascent_into_parallel``, its ``prange`` twin (each block summed in a thread into a row of block
        sums, the rows then added in order: the same additions, bit for bit); and ``packed_ascent``, the first in
        place (``out`` = ``params``)."""
        parts = [self.ascent_function(unpack, iterate) for iterate in ("range", "prange")]
        parts.append("def packed_ascent(params, grad, states, aux, hyper, counters, layout):\n"
                     "    packed_ascent_into(params, grad, params, states, aux, hyper, counters, layout)\n")
        return "\n\n\n".join(part.rstrip() for part in parts)

    def ascent_function(self, unpack, iterate):
        """One of :meth:`ascent_source`'s ``packed_ascent_into`` functions, its loops ``iterate``."""
        closure, rule = self.rule.closure, self.rule
        reduction = closure.reduction
        lines = ["step = np.int64(counters[0]) + 1", *unpack, "_real = params.dtype.type"]

        def arguments(function, what, real):
            named = []
            for name in _parameters(function, what, rule.name)[2 if real else 0:]:
                if name in self.flags:
                    named.append(self.literal(name))
                elif real:
                    if f"_c_{name}" not in lines_set:
                        lines.append(f"_c_{name} = to_element({name}, _real)")
                        lines_set.add(f"_c_{name}")
                    named.append(f"_c_{name}")
                else:
                    named.append(name)
            return named

        lines_set = set()
        if reduction is not None:
            # each block's terms in _LANES running sums (element i into lane i mod _LANES), added pairwise at the
            # block's end: the float64 additions of one sum do not wait on each other, which a single running
            # sum makes the bound of the whole closure
            sums = list(reduction.outputs)
            terms = [f"_t{k}" for k in range(len(sums))]
            taken = arguments(reduction.function, "closure's reduction function", True)
            lines.append(f"_blocks = (params.size + {REDUCTION_BLOCK - 1}) // {REDUCTION_BLOCK}")
            lines += [f"{name} = 0.0" for name in sums]
            if iterate == "prange":
                lines.append(f"_block_sums = np.empty((_blocks, {len(sums)}))")
            # a block's whole rows of _LANES as a (rows, _LANES) view, read a row at a time at constant columns: no
            # index that LLVM cannot prove non-negative (Numba's wraparound test on each read made this loop, and
            # the ascent's loop after it, scalar code twice as slow)
            lines += [f"for _k in {iterate}(_blocks):", f"    _b = _k * {REDUCTION_BLOCK}",
                      f"    _e = min(_b + {REDUCTION_BLOCK}, params.size)", f"    _rows = (_e - _b) // {_LANES}",
                      f"    _params_rows = params[_b:_b + _rows * {_LANES}].reshape((_rows, {_LANES}))",
                      f"    _grad_rows = grad[_b:_b + _rows * {_LANES}].reshape((_rows, {_LANES}))"]
            lines += [f"    _p{k}_{lane} = 0.0" for k in range(len(sums)) for lane in range(_LANES)]
            lines += ["    for _m in range(_rows):", "        _param_row, _grad_row = _params_rows[_m], _grad_rows[_m]"]
            for lane in range(_LANES):
                call = ", ".join([f"_param_row[{lane}]", f"_grad_row[{lane}]", *taken])
                lines.append(f"        {', '.join(terms)} = closure_reduction({call})")
                lines += [f"        _p{k}_{lane} += float(_t{k})" for k in range(len(sums))]
            lines.append(f"    for _i in range(_b + _rows * {_LANES}, _e):")
            call = ", ".join(["params[_i]", "grad[_i]", *taken])
            lines.append(f"        {', '.join(terms)} = closure_reduction({call})")
            lines += [f"        _p{k}_0 += float(_t{k})" for k in range(len(sums))]
            block_sums = [f"((_p{k}_0 + _p{k}_1) + (_p{k}_2 + _p{k}_3)) + ((_p{k}_4 + _p{k}_5) + (_p{k}_6 + _p{k}_7))"
                          for k in range(len(sums))]
            if iterate == "prange":
                lines += [f"    _block_sums[_k, {k}] = {block_sum}" for k, block_sum in enumerate(block_sums)]
                lines.append("for _k in range(_blocks):")
                lines += [f"    {name} += _block_sums[_k, {k}]" for k, name in enumerate(sums)]
            else:
                lines += [f"    {name} += {block_sum}" for name, block_sum in zip(sums, block_sums)]
            if reduction.finish is not None:
                finished = ", ".join(arguments(reduction.finish.function, "closure's finish function", False))
                lines.append(f"{', '.join(reduction.finish.outputs)} = closure_finish({finished})")
        call = ", ".join(["params[_i]", "grad[_i]", *arguments(closure.ascent, "closure's ascent function", True)])
        lines += [f"for _i in {iterate}(params.size):", f"    out[_i] = ascent({call})"]
        suffix = "_parallel" if iterate == "prange" else ""
        return (f"def packed_ascent_into{suffix}(params, grad, out, states, aux, hyper, counters, layout):\n"
                + "".join(f"    {line}\n" for line in lines))

    def evaluation_source(self):
        """``evaluate(params, states, hyper, out)``: the evaluation point of every parameter into ``out``."""
        evaluation = self.rule.evaluation
        lines = [f"{name} = hyper[{k}]" for k, name in enumerate(self.hyper_names)]
        lines += [f"{name} = states[{row}]" for row, name in enumerate(self.present)]
        if evaluation.scalars is not None:
            arguments = [self.literal(name) if name in self.flags else name for name in
                         _parameters(evaluation.scalars.function, "evaluation scalars", self.rule.name)]
            lines.append(f"{', '.join(evaluation.scalars.outputs)} = evaluation_scalars({', '.join(arguments)})")
        parameters = _parameters(evaluation.function, "evaluation function", self.rule.name)
        lines += ["_real = params.dtype.type", "_zero = _real(0.0)"]
        arguments = ["params[_i]"]
        for name in parameters[1:]:
            if name in self.rule.state:
                arguments.append(f"{name}[_i]" if name in self.present else "_zero")
            elif name in self.flags:
                arguments.append(self.literal(name))
            else:
                lines.append(f"{name} = to_element({name}, _real)")
                arguments.append(name)
        lines += ["for _i in range(params.size):", f"    out[_i] = evaluation({', '.join(arguments)})"]
        return "def evaluate(params, states, hyper, out):\n" + "".join(f"    {line}\n" for line in lines)


def _header(rule, flags, target):
    settings = ", ".join(f"{key}={value}" for key, value in sorted(flags.items())) or "none"
    return (f'"""Generated by fastgd.rules ({target}) for rule {rule.name!r}, definition {rule.hash}; flags: '
            f'{settings}.\n\nDo not edit: it is written again from the definition."""\n\nimport numpy as np\n'
            "from numba import prange")


def variant_stem(rule, flags, target):
    key = repr(sorted(dict(flags).items())).encode()
    return f"{target}_{rule.name}_{rule.hash[:16]}_{hashlib.sha256(key).hexdigest()[:8]}"


def load_generated(stem, source, namespace):
    """Write ``source`` to ``<generated_directory>/<stem>.py`` (once) and import it with ``namespace`` injected."""
    path = os.path.join(generated_directory(), stem + ".py")
    write_source(path, source)
    module_name = f"fastgd_generated.{stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    vars(module).update(namespace)
    spec.loader.exec_module(module)
    sys.modules[module_name] = module
    return module


def write_source(path, source):
    """Make ``path`` hold ``source``, atomically under the machine-wide lock: a process importing it never reads
    a half-written file, whoever else writes it at once (sweep workers, Dask workers on one machine)."""
    with _config.compile_lock():
        if _read(path) != source:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            temporary = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
            with open(temporary, "w", encoding="utf-8") as file:
                file.write(source)
            os.replace(temporary, path)


def _read(path):
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except OSError:
        return None


# --- compiled variants ---------------------------------------------------------------------------

class CompiledVariant:
    """The compiled forms of one rule for one set of flags (see the module docstring)."""

    def __init__(self, rule, flags):
        self.rule, self.flags = rule, dict(flags)
        self.plan = _Plan(rule, flags)
        self.present = tuple(self.plan.present)
        self.kernel_parameters = tuple(self.plan.kernel_parameters)
        namespace = dict(to_element=to_element, machine_epsilon=machine_epsilon)
        if rule.reduction is not None:
            namespace["reduction"] = _inline_jit(rule.reduction.function)
            if rule.reduction.finish is not None:
                namespace["finish"] = _inline_jit(rule.reduction.finish.function)
        if rule.element is not None:
            namespace["element"] = _inline_jit(rule.element)
        if rule.per_step is not None:
            namespace["per_step"] = _inline_jit(rule.per_step.function)
        if rule.per_tensor is not None:
            namespace["per_tensor"] = _config.jit(getattr(rule.per_tensor.function, "py_func",
                                                          rule.per_tensor.function), cache=False)
            if rule.per_tensor.aux_size is not None:
                namespace["aux_size"] = _inline_jit(rule.per_tensor.aux_size)
        if rule.closure is not None:
            namespace["ascent"] = _inline_jit(rule.closure.ascent)
            if rule.closure.reduction is not None:
                namespace["closure_reduction"] = _inline_jit(rule.closure.reduction.function)
                if rule.closure.reduction.finish is not None:
                    namespace["closure_finish"] = _inline_jit(rule.closure.reduction.finish.function)
        if rule.evaluation is not None:
            namespace["evaluation"] = _inline_jit(rule.evaluation.function)
            if rule.evaluation.scalars is not None:
                namespace["evaluation_scalars"] = _inline_jit(rule.evaluation.scalars.function)
        self.stem = variant_stem(rule, flags, "cpu")
        self.source = self.plan.cpu_source(_header(rule, flags, "CPU"))
        module = load_generated(self.stem, self.source, namespace)
        self.module = module
        namespace = vars(module)
        for name in ("loop_scalars", "reduction_inputs", "kernel", "packed_step", "evaluate", "packed_ascent_into",
                     "packed_ascent"):
            if name in namespace:
                namespace[name] = _config.jit(namespace[name])
        for name in ("kernel_parallel", "packed_step_parallel"):
            namespace[name] = _config.jit(namespace[name], parallel=self.plan.has_parallel_loop)
        if "packed_ascent_into_parallel" in namespace:
            namespace["packed_ascent_into_parallel"] = _config.jit(namespace["packed_ascent_into_parallel"],
                                                                   parallel=True)
        self.loop_scalars = namespace.get("loop_scalars")
        self.reduction_inputs = namespace.get("reduction_inputs")
        self.kernel = namespace["kernel"]
        self.kernel_parallel = namespace["kernel_parallel"]
        self.packed_step = namespace["packed_step"]
        self.packed_step_parallel = namespace["packed_step_parallel"]
        self.evaluate = namespace.get("evaluate")
        self.packed_ascent = namespace.get("packed_ascent")
        self._entries = {}
        self._ascent_entries = {}
        self._checked = set()
        self.cuda = None  # its CUDA form, made on first use (fastgd.cuda.rules.compiled)

    def entry(self, dtype, parallel=False):
        """``packed_step`` compiled as a C callback for ``dtype``: what compiled training loops call.

        ``parallel``: ``packed_step_parallel``, its ``prange`` twin (the same values), for epochs whose
        model pass already keeps Numba's threads busy (``fastgd.training.Training``).
        """
        dtype = np.dtype(dtype)
        key = (dtype, bool(parallel) and self.plan.has_parallel_loop)
        if key not in self._entries:
            name = "packed_step_parallel" if key[1] else "packed_step"
            with self._refusing(dtype):
                self._entries[key] = _config.cfunc(packed_step_signature(dtype), parallel=key[1])(
                    vars(self.module)[name].py_func)
        return self._entries[key]

    def ascent_entry(self, dtype, parallel=False):
        """``packed_ascent_into`` compiled as a C callback for ``dtype`` (:func:`ascent_signature`), or None for a
        rule without a closure: what compiled epochs take to evaluate the gradient a second time. It writes the
        evaluation point into its ``out`` and leaves ``params`` as they are, so an epoch needs no copy of θ.

        ``parallel``: ``packed_ascent_into_parallel``, its ``prange`` twin (the same values, bit for bit), for
        epochs whose model pass already keeps Numba's threads busy, as :meth:`entry`'s.
        """
        if self.packed_ascent is None:
            return None
        key = (np.dtype(dtype), bool(parallel))
        if key not in self._ascent_entries:
            name = "packed_ascent_into_parallel" if key[1] else "packed_ascent_into"
            with self._refusing(key[0]):
                self._ascent_entries[key] = _config.cfunc(ascent_signature(key[0]), parallel=key[1])(
                    vars(self.module)[name].py_func)
        return self._ascent_entries[key]

    @contextlib.contextmanager
    def _refusing(self, dtype):
        """Compile inside, under the rule's compile lock (its generated module and ``dtype``): another process
        compiling the same waits and then loads it; a NumbaError becomes a one-line RuleError naming the rule."""
        try:
            with _config.compile_lock(f"{self.module.__name__}({dtype})"):
                yield
        except NumbaError as error:
            raise RuleError(f"rule {self.rule.name!r}: Numba cannot compile it for {dtype}: "
                            f"{_first_line(error)}") from None

    def check_compiles(self, dtype, parallel=False):
        """Compile ``packed_step`` (or its ``prange`` twin) for ``dtype``, or load it, under the rule's compile lock.

        A definition Numba cannot type gives a :class:`RuleError` naming the
        rule and the first line of Numba's complaint, before anything runs.
        """
        key = (np.dtype(dtype), bool(parallel))
        if key in self._checked:
            return
        dispatcher = self.packed_step_parallel if parallel else self.packed_step
        signature = packed_step_signature(key[0]).args
        with self._refusing(key[0]):
            if signature not in dispatcher.overloads:
                dispatcher.compile(signature)
            if self.packed_ascent is not None and signature not in self.packed_ascent.overloads:
                self.packed_ascent.compile(signature)
        self._checked.add(key)


def _first_line(error):
    """The line of a Numba error message that says what is wrong."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("During:", "File ", "^", "[1]", "<source"))
              and "Failed in nopython mode pipeline" not in line]
    text = " ".join((useful or lines or [type(error).__name__])[:2])
    return text if len(text) <= 300 else text[:297] + "..."


def _inline_jit(function):
    """``function`` (Python or a dispatcher) compiled with fastgd's flags and inlined into its callers.

    Not cached itself: only its callers' code runs, and they are cached in the
    generated module, whose name carries the rule's hash (a function defined
    at a prompt or in a notebook has no file to be cached by).
    """
    return _config.jit(getattr(function, "py_func", function), inline=True, cache=False)


_COMPILED = {}
_COMPILED_LOCK = threading.Lock()


def compiled(rule, flags):
    """The :class:`CompiledVariant` of ``rule`` for ``flags`` (a dict), made once per process."""
    key = (rule.hash, tuple(sorted(dict(flags).items())))
    with _COMPILED_LOCK:
        variant = _COMPILED.get(key)
        if variant is None:
            variant = _COMPILED[key] = CompiledVariant(rule, flags)
    return variant
