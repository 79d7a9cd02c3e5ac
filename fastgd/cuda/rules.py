r"""Every rule as a CUDA kernel over one flat device vector, generated from its definition.

The math is not written here, nor per rule: for each rule variant the
generator (:mod:`fastgd.rules.compile`) writes a grid-stride kernel whose
loop body is the very text of the CPU loop, calling the rule's element
function compiled a second time with ``cuda.jit(device=True)``; one launch
per step, each thread a strided share of the parameters. The per-step scalars
(bias corrections, decayed rates, the decoupled decay factor) come from the
same compiled ``loop_scalars`` as on the CPU, run on the host and cast to the
parameters' dtype, so float32 stays float32 and float64 follows the CPU
kernels' operations in the same order.

Two launchers per variant, both taking ``halt``, a device int32 array: when
it has an element and that is not 0, the kernel leaves everything as it is
(a training epoch sets it at the first non-finite loss without a host round
trip):

``launch``
    The CPU kernel's signature (``fastgd.rules.kernels.<rule>``) plus ``halt``.
``packed_launch``
    The packed signature of ``packed_step`` plus ``halt``: what the optimizer
    classes and :mod:`fastgd.cuda.train` call. ``hyper`` and ``counters`` stay
    on the host.

A variant whose step sums over every parameter first (:class:`fastgd.rules.Reduction`: Prodigy,
D-Adaptation, Adan clipping by the global norm) takes three launches a step: ``reduction_kernel`` (thread k
sums block k of the vector in order, in float64, as the CPU kernel does), the block sums copied to the host
and added there in the CPU's order, then the finish and the element's kernel. The copy makes such a step
wait for the device: it is one small transfer per step, not per parameter. A per-tensor function marked
``PerTensor(..., cuda=False)`` (it calls LAPACK) has no CUDA form: the rule is refused in one line naming it.

Most users reach these through :mod:`fastgd.optim`, whose classes accept device arrays::

    params = numba.cuda.to_device(theta)                  # or a CuPy array, a torch CUDA tensor
    opt = fastgd.optim.Adam(params, lr=1e-3)
    opt.step(grad)                                        # grad on the device too: one launch
"""

import threading

import numpy as np
from numba import cuda

from fastgd._config import cuda_jit
from fastgd.cuda import blas
from fastgd.cuda.arrays import launch_shape, no_halt
from fastgd.rules import RuleError
from fastgd.rules import compiled as compiled_rule
from fastgd.rules.compile import _header, load_generated, to_element, variant_stem
from fastgd.rules.definition import REDUCTION_BLOCK

__all__ = ["CudaVariant", "compiled", "launcher"]


def _source(plan, header):
    """The CUDA module of a rule variant: kernels, then the host launchers (see the module docstring)."""
    n_state = len(plan.scalar_state)
    tensor = plan.tensor
    tensors = ["aux", "layout"] if tensor is not None else []
    scalars = ", ".join(["step", "dtype_eps", *plan.scalar_state, *plan.hyper_names])
    cast = [f"to_element(_scalars[{n_state + k}], _real)" for k in range(len(plan.loop_scalars))]
    returned = f"    return {', '.join(f'_scalars[{k}]' for k in range(n_state))}\n" if n_state else ""
    halt = "if _halt.size > 0 and _halt[0] != 0:\n        return\n"
    parts = [header]
    launches = []
    if tensor is None or tensor.where == "matrices":
        parameters = ", ".join(["params", "grad", *plan.present, *(["layout"] if tensor else []), *plan.loop_scalars,
                                "_halt"])
        if tensor is None:
            loop = f"    for _i in range(cuda.grid(1), params.size, cuda.gridsize(1)):\n{plan.body(8)}"
        else:
            loop = ("    for _s in range(layout.shape[0]):\n"
                    "        if layout[_s, 1] != 2:\n"
                    "            _offset = layout[_s, 0]\n"
                    "            _end = _offset + layout[_s, 2] * layout[_s, 3]\n"
                    "            for _i in range(_offset + cuda.grid(1), _end, cuda.gridsize(1)):\n"
                    f"{plan.body(16)}")
        parts.append(f"def loop_kernel({parameters}):\n    {halt}    _zero = params.dtype.type(0.0)\n{loop}")
        arguments = ", ".join(["params", "grad", *plan.present, *(["layout"] if tensor else []), *cast])
        launches.append(f"    loop_kernel[launch_shape(params.size)]({arguments}, _halt)")
    if tensor is not None:
        parameters = ", ".join(["params", "grad", *plan.present, "aux", "layout", "step", "dtype_eps",
                                *plan.loop_scalars, "_halt"])
        aux_size = "aux_size({rows}, {columns}, {ndim})" if tensor.aux_size is not None else "0"
        lines = ["_s = cuda.grid(1)", "if _s >= layout.shape[0]:", "    return",
                 "ndim = layout[_s, 1]", "rows = layout[_s, 2]", "columns = layout[_s, 3]"]
        if tensor.where == "matrices":
            lines += ["if ndim != 2:", "    return"]
        lines += ["_aux_offset = 0", "for _p in range(_s):",
                  "    _aux_offset += " + aux_size.format(rows="layout[_p, 2]", columns="layout[_p, 3]",
                                                        ndim="layout[_p, 1]"),
                  "_aux_size = " + aux_size.format(rows="rows", columns="columns", ndim="ndim"),
                  "_offset = layout[_s, 0]", "_end = _offset + rows * columns", "_zero = params.dtype.type(0.0)"]
        if plan.decay_mode == "decoupled":
            lines += ["for _i in range(_offset, _end):", "    params[_i] = params[_i] * _decay_factor"]
        lines.append(plan.tensor_call())
        body = "".join(f"    {line}\n" for line in lines)
        parts.append(f"def tensor_kernel({parameters}):\n    {halt}{body}")
        arguments = ", ".join(["params", "grad", *plan.present, "aux", "layout", "step", "dtype_eps", *cast])
        launches.append(f"    tensor_kernel[tensor_shape(layout.shape[0])]({arguments}, _halt)")
    prologue = [f"_scalars = loop_scalars({scalars})", "_halt = no_halt() if halt is None else halt"]
    if plan.reduces:
        parts.append(_reduction_kernel(plan))
        prologue = _reduction_prologue(plan, scalars)
    parts.append(f"def launch({', '.join(plan.kernel_parameters)}, halt=None):\n"
                 f"    _real = params.dtype.type\n"
                 f"    dtype_eps = float(np.finfo(params.dtype).eps)\n"
                 + "".join(f"    {line}\n" for line in prologue) + "\n".join(launches) + f"\n{returned}")
    rows = [f"states[{row}]" for row in range(len(plan.present))] + tensors + ["step"]
    rows += [f"float(counters[{1 + k}])" for k in range(n_state)]
    rows += plan.hyper_expressions("float({})")
    if n_state == 0:
        call, store = "    ", ""
    elif n_state == 1:
        call, store = "    _new = ", "\n    counters[1] = _new"
    else:
        call = "    _new = "
        store = "".join(f"\n    counters[{1 + k}] = _new[{k}]" for k in range(n_state))
    parts.append(f"def packed_launch(params, grad, states, aux, hyper, counters, layout, halt=None):\n"
                 f"    counters[0] += 1.0\n"
                 f"    step = int(counters[0])\n"
                 f"{call}launch(params, grad, {', '.join(rows)}, halt=halt){store}")
    return "\n\n\n".join(part.rstrip() for part in parts) + "\n"


def _reduction_kernel(plan):
    """``reduction_kernel``: thread k sums block k of :data:`~fastgd.rules.definition.REDUCTION_BLOCK` parameters
    in order, in float64, into ``_block_sums[k]`` (zeros when halted): the CPU kernel's block sums, bit for bit
    where the reduction function's terms round as they do on the CPU."""
    sums = plan.reduction.outputs
    scalars = [f"_r_{name}" for name in plan.reduction_scalars]
    coupled = [plan.decay_name] if plan.decay_mode == "coupled" else []
    parameters = ", ".join(["params", "grad", *plan.present, *scalars, *coupled, "_block_sums", "_halt"])
    lines = ["_k = cuda.grid(1)", "if _k >= _block_sums.shape[0]:", "    return",
             "_zero = params.dtype.type(0.0)"]
    lines += [f"_p{k} = 0.0" for k in range(len(sums))]
    lines += ["if _halt.size == 0 or _halt[0] == 0:",
              f"    for _i in range(_k * {REDUCTION_BLOCK}, min((_k + 1) * {REDUCTION_BLOCK}, params.size)):"]
    lines += [f"        {line}" for line in plan._read()]
    lines.append(f"        {plan.reduction_call('_zero')}")
    lines += [f"        _p{k} += float(_t{k})" for k in range(len(sums))]
    lines += [f"_block_sums[_k, {k}] = _p{k}" for k in range(len(sums))]
    return f"def reduction_kernel({parameters}):\n" + "".join(f"    {line}\n" for line in lines)


def _reduction_prologue(plan, scalars):
    """The host lines of a step with a reduction pass: its inputs, the device's block sums, added in order on the
    host as the CPU adds them, then the finish and the loop's scalars (``loop_scalars(..., *sums)``)."""
    n_sums = len(plan.reduction.outputs)
    inputs = [*plan.reduction_scalars, *([plan.decay_name] if plan.decay_mode == "coupled" else [])]
    cast = [f"to_element(_inputs[{k}], _real)" for k in range(len(inputs))]
    arguments = ", ".join(["params", "grad", *plan.present, *cast, "_block_sums", "_halt"])
    return [f"_inputs = reduction_inputs({scalars})",
            "_halt = no_halt() if halt is None else halt",
            f"_blocks = (params.size + {REDUCTION_BLOCK - 1}) // {REDUCTION_BLOCK}",
            f"_block_sums = new_block_sums(_blocks, {n_sums})",
            f"reduction_kernel[tensor_shape(_blocks)]({arguments})",
            "_sums = add_in_order(_block_sums)",
            f"_scalars = loop_scalars({scalars}, *_sums)"]


def new_block_sums(n_blocks, n_sums):
    """The device array (blocks × sums, float64) a step's ``reduction_kernel`` writes its block sums into."""
    return cuda.device_array((n_blocks, n_sums), dtype=np.float64)


def add_in_order(block_sums):
    """The columns of ``block_sums`` (blocks × sums, float64, on the device or the host) each added from the first
    row on, as floats: the CPU kernel's order of additions."""
    values = block_sums.copy_to_host() if hasattr(block_sums, "copy_to_host") else np.asarray(block_sums)
    totals = [0.0] * values.shape[1]
    for row in values.tolist():
        for k, value in enumerate(row):
            totals[k] += value
    return totals


def tensor_shape(n_tensors):
    """(blocks, threads) of a per-tensor launch: one thread per tensor of the layout."""
    threads = 32
    return max(1, -(-n_tensors // threads)), threads


class CudaVariant:
    """The CUDA kernel and launchers of one compiled rule variant (:class:`fastgd.rules.compile.CompiledVariant`)."""

    def __init__(self, variant):
        rule, plan = variant.rule, variant.plan
        if rule.uses_loss:
            raise RuleError(f"rule {rule.name!r}: its loss input has no CUDA form yet: train it on the CPU (NumPy "
                            "arrays, device='cpu')")
        if rule.closure is not None:
            raise RuleError(f"rule {rule.name!r}: its closure (a second gradient per step) has no CUDA form yet: "
                            "train it on the CPU (NumPy arrays, device='cpu')")
        if rule.per_tensor is not None and not rule.per_tensor.cuda:
            raise RuleError(f"rule {rule.name!r}: its per-tensor function has no CUDA form (it calls LAPACK): "
                            "train it on the CPU (NumPy arrays, device='cpu')")
        self.variant = variant
        self.stem = variant_stem(rule, variant.flags, "cuda")
        self.source = _source(plan, _header(rule, variant.flags, "CUDA") + "\nfrom numba import cuda")
        namespace = dict(to_element=to_element, launch_shape=launch_shape, tensor_shape=tensor_shape,
                         no_halt=no_halt, loop_scalars=variant.loop_scalars, add_in_order=add_in_order,
                         new_block_sums=new_block_sums,
                         reduction_inputs=variant.reduction_inputs)
        for name, function in (("element", rule.element),
                               ("reduction", rule.reduction.function if plan.reduces else None),
                               ("per_tensor", rule.per_tensor and rule.per_tensor.function),
                               ("aux_size", rule.per_tensor and rule.per_tensor.aux_size)):
            if function is not None:
                namespace[name] = cuda_jit(blas.on_the_device(getattr(function, "py_func", function)), device=True)
        module = load_generated(self.stem, self.source, namespace)
        for name in ("loop_kernel", "tensor_kernel", "reduction_kernel"):
            if name in vars(module):
                vars(module)[name] = cuda_jit(vars(module)[name])
        self.module = module
        self.loop_kernel = vars(module).get("loop_kernel")
        self.tensor_kernel = vars(module).get("tensor_kernel")
        self.reduction_kernel = vars(module).get("reduction_kernel")
        self.launch = vars(module)["launch"]
        self.packed_launch = vars(module)["packed_launch"]


_LOCK = threading.Lock()


def compiled(variant):
    """The :class:`CudaVariant` of a CPU :class:`~fastgd.rules.compile.CompiledVariant`, made once per process.

    Kept on the variant, which is itself made once per rule definition and flags.
    """
    with _LOCK:
        if getattr(variant, "cuda", None) is None:
            variant.cuda = CudaVariant(variant)
        return variant.cuda


def launcher(rule, flags=None):
    """The CPU kernel's twin on the device for ``rule`` (a name or a Rule): ``launch(..., halt=None)``."""
    return compiled(compiled_rule(rule, flags)).launch
