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
    The CPU kernel's signature (``fastgd.kernels.<rule>``) plus ``halt``.
``packed_launch``
    The packed signature of ``packed_step`` plus ``halt``: what the optimizer
    classes and :mod:`fastgd.cuda.train` call. ``hyper`` and ``counters`` stay
    on the host.

Most users reach these through :mod:`fastgd.optim`, whose classes accept device arrays::

    params = numba.cuda.to_device(theta)                  # or a CuPy array, a torch CUDA tensor
    opt = fastgd.optim.Adam(params, lr=1e-3)
    opt.step(grad)                                        # grad on the device too: one launch
"""

import threading

from fastgd._config import cuda_jit
from fastgd.cuda.arrays import launch_shape, no_halt
from fastgd.rules import compiled as compiled_rule
from fastgd.rules.compile import _header, load_generated, to_element, variant_stem

__all__ = ["CudaVariant", "compiled", "launcher"]


def _source(plan, header):
    n_state = len(plan.scalar_state)
    loop_parameters = ", ".join(["params", "grad", *plan.present, *plan.loop_scalars, "_halt"])
    scalars = ", ".join(["step", *plan.scalar_state, *plan.hyper_names])
    cast = ", ".join(["params", "grad", *plan.present] +
                     [f"to_element(_scalars[{n_state + k}], _real)" for k in range(len(plan.loop_scalars))])
    if n_state == 0:
        returned = ""
    elif n_state == 1:
        returned = "    return _scalars[0]\n"
    else:
        returned = f"    return _scalars[:{n_state}]\n"
    rows = ", ".join([f"states[{row}]" for row in range(len(plan.present))] + ["step"] +
                     [f"float(counters[{1 + k}])" for k in range(n_state)] +
                     [f"float(hyper[{k}])" for k in range(len(plan.hyper_names))])
    if n_state == 0:
        call, store = "    ", ""
    elif n_state == 1:
        call, store = "    _new = ", "\n    counters[1] = _new"
    else:
        call = "    _new = "
        store = "".join(f"\n    counters[{1 + k}] = _new[{k}]" for k in range(n_state))
    parts = [
        header,
        f"def loop_kernel({loop_parameters}):\n"
        f"    if _halt.size > 0 and _halt[0] != 0:\n"
        f"        return\n"
        f"    _zero = params.dtype.type(0.0)\n"
        f"    for _i in range(cuda.grid(1), params.size, cuda.gridsize(1)):\n{plan.body(8)}",
        f"def launch({', '.join(plan.kernel_parameters)}, halt=None):\n"
        f"    _real = params.dtype.type\n"
        f"    _scalars = loop_scalars({scalars})\n"
        f"    loop_kernel[launch_shape(params.size)]({cast}, no_halt() if halt is None else halt)\n{returned}",
        f"def packed_launch(params, grad, states, aux, hyper, counters, layout, halt=None):\n"
        f"    counters[0] += 1.0\n"
        f"    step = int(counters[0])\n"
        f"{call}launch(params, grad, {rows}, halt=halt){store}",
    ]
    return "\n\n\n".join(parts) + "\n"


class CudaVariant:
    """The CUDA kernel and launchers of one compiled rule variant (:class:`fastgd.rules.compile.CompiledVariant`)."""

    def __init__(self, variant):
        rule, plan = variant.rule, variant.plan
        self.variant = variant
        self.stem = variant_stem(rule, variant.flags, "cuda")
        self.source = _source(plan, _header(rule, variant.flags, "CUDA") + "\nfrom numba import cuda")
        element = cuda_jit(getattr(rule.element, "py_func", rule.element), device=True)
        namespace = dict(element=element, to_element=to_element, launch_shape=launch_shape, no_halt=no_halt,
                         loop_scalars=variant.loop_scalars)
        module = load_generated(self.stem, self.source, namespace)
        vars(module)["loop_kernel"] = cuda_jit(vars(module)["loop_kernel"])
        self.module = module
        self.loop_kernel = vars(module)["loop_kernel"]
        self.launch = vars(module)["launch"]
        self.packed_launch = vars(module)["packed_launch"]


_COMPILED = {}
_LOCK = threading.Lock()


def compiled(variant):
    """The :class:`CudaVariant` of a CPU :class:`~fastgd.rules.compile.CompiledVariant`, made once per process."""
    key = (variant.rule.hash, tuple(sorted(variant.flags.items())))
    with _LOCK:
        if key not in _COMPILED:
            _COMPILED[key] = CudaVariant(variant)
        return _COMPILED[key]


def launcher(rule, flags=None):
    """The CPU kernel's twin on the device for ``rule`` (a name or a Rule): ``launch(..., halt=None)``."""
    return compiled(compiled_rule(rule, flags)).launch
