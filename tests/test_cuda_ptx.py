"""The CUDA path without a GPU: every kernel compiles to PTX for compute capability 9.0, and
``device="cuda"`` says why it cannot run.

The simulator run (tests/cuda) checks the kernels' results but not their
types; NVIDIA's NVVM (from the cuda-toolkit wheels) compiles them here as a
GPU's driver would, and catches typing errors, float64 arithmetic in float32
kernels and accumulators spilled out of registers.
"""

import importlib
import re
import types

import numba
import numpy as np
import pytest

import fastgd.cuda as fastgd_cuda
from fastgd import MLPClassifier, NetworkClassifier, optim
from network_cases import device_kernel_signatures
from rule_cases import LAYOUT_37, case_id, cases, cpu_only

try:
    from numba import cuda
    from numba.cuda.cudadrv import nvvm

    NVVM_MISSING = None if nvvm.is_available() else "NVIDIA's NVVM is not installed (pip install 'fastgd[cuda]')"
except ImportError as error:
    NVVM_MISSING = f"numba-cuda is not installed ({error}); pip install 'fastgd[cuda]'"

needs_nvvm = pytest.mark.skipif(NVVM_MISSING is not None, reason=str(NVVM_MISSING))
COMPUTE_CAPABILITY = (9, 0)
DTYPES = [np.float32, np.float64]
DEVICE_MODULES = ["fastgd.cuda.arrays", "fastgd.cuda.mlp"]  # the rules' kernels are generated: see below

# Kernels that accumulate in float64 on purpose (losses, penalties, norms);
# every other kernel must compile to float32-only PTX for float32 data.
FLOAT64_ACCUMULATORS = {"weight_gradient", "output_loss_and_delta", "finish_batch", "add_sum_of_squares",
                        "add_scaled_and_sum_of_squares"}
TILED_PRODUCTS = {"forward_layer", "weight_gradient", "backward_delta"}


def kernels_of_the_package(modules=DEVICE_MODULES):
    """Every CUDA kernel (not device function) that ``modules`` of fastgd.cuda define: name → dispatcher."""
    found = {}
    for module_name in modules:
        for name, value in vars(importlib.import_module(module_name)).items():
            targetoptions = getattr(value, "targetoptions", None)
            if targetoptions is not None and not targetoptions.get("device") and hasattr(value, "py_func"):
                found[value.py_func.__name__] = value
    return found


def mlp_signatures(real):
    """The argument types fastgd.cuda.train launches the MLP's and the arrays' kernels with (and fastgd.cuda.network
    the penalty's fused reduction), for one dtype."""
    vector, matrix = numba.types.Array(real, 1, "C"), numba.types.Array(real, 2, "C")
    status = numba.types.Array(numba.types.float64, 1, "C")
    halt = numba.types.Array(numba.types.int32, 1, "C")
    order = numba.types.Array(numba.types.int64, 1, "C")
    integer, flag, double = numba.types.int64, numba.types.boolean, numba.types.float64
    return {
        "_fill": (vector, real),
        "add_sum_of_squares": (vector, status, integer),
        "add_scaled_and_sum_of_squares": (vector, real, vector, status, integer),
        "flag_nonfinite": (vector, status, integer),
        "forward_layer": (matrix, matrix, vector, matrix, integer),
        "weight_gradient": (matrix, matrix, matrix, real, matrix, vector, status, flag),
        "backward_delta": (matrix, matrix, matrix, matrix, integer),
        "output_loss_and_delta": (matrix, matrix, matrix, integer, real, double, status),
        "gather_batch": (matrix, matrix, order, integer, matrix, matrix),
        "finish_batch": (status, halt, double, double, double, double, vector),
        "scale_by_factor": (vector, vector),
    }


class Recorder:
    """Stands in for a kernel: ``kernel[launch](*args)`` records the argument types instead of launching."""

    def __init__(self, name, calls):
        self.name, self.calls = name, calls

    def __getitem__(self, launch):
        return lambda *args: self.calls.append((self.name, tuple(numba.typeof(arg) for arg in args)))


def rule_kernel_signatures():
    """{(case id, dtype, kernel name): (kernel, the signatures it was launched with)} for every case of rule_cases.

    Recorded from the real launchers (``packed_launch``), as the optimizer classes and training
    call them, with host arrays standing in for device arrays (same Numba types) and the layout
    of ``problem(37)``.
    """
    from fastgd.cuda import rules as cuda_rules

    found = {}
    for dtype in DTYPES:
        for case in cases():
            name, hyperparameters = case
            if cpu_only(name, hyperparameters):  # no CUDA form: refused (tests/cuda/test_cuda_updates.py)
                continue
            optimizer = optim.OPTIMIZERS[name](np.ones(37, dtype), layout=LAYOUT_37, **hyperparameters)
            with pytest.MonkeyPatch.context() as patch:
                # the launcher takes the packed arrays, not the CPU step's C callback: compiling that callback for
                # every case and dtype took 150 s of each test run's collection here (AMD EPYC, empty cache)
                patch.setattr(optimizer._place, "packed_function", lambda variant, dtype, parallel: None)
                packed = optimizer.packed()
                variant = cuda_rules.compiled(packed.variant)
                namespace, calls = vars(variant.module), []
                for kernel in ("loop_kernel", "tensor_kernel", "reduction_kernel"):
                    if namespace.get(kernel) is not None:
                        patch.setitem(namespace, kernel, Recorder(kernel, calls))
                patch.setitem(namespace, "no_halt", lambda: np.zeros(0, np.int32))
                patch.setitem(namespace, "new_block_sums", lambda blocks, sums: np.zeros((blocks, sums)))
                namespace["packed_launch"](np.ones(37, dtype), np.ones(37, dtype), packed.states, packed.aux,
                                           packed.hyper, packed.counters.copy(), packed.layout)
            for kernel, signature in calls:
                key = (case_id(case), np.dtype(dtype).name, kernel)
                found.setdefault(key, (getattr(variant, kernel), set()))[1].add(signature)
    return found


# recorded once, at collection, and only where the kernels can be compiled: the generated CUDA modules
# import numba.cuda
RULE_KERNELS = rule_kernel_signatures() if NVVM_MISSING is None else {}


def distinct_compiles():
    """One (case id, dtype, kernel name) per distinct (kernel, signature): cases of one variant share their kernels."""
    first = {}
    for key, (kernel, signatures) in RULE_KERNELS.items():
        for signature in signatures:
            first.setdefault((id(kernel), signature), (key, signature))
    return sorted(first.values(), key=lambda item: item[0])


def compile_ptx(kernel, signature):
    ptx, _ = cuda.compile_ptx(kernel.py_func, signature, cc=COMPUTE_CAPABILITY)
    return ptx


def test_every_kernel_has_a_signature_here():
    assert set(kernels_of_the_package()) == set(mlp_signatures(numba.types.float32))
    assert set(kernels_of_the_package(["fastgd.cuda.network"])) == set(device_kernel_signatures(numba.types.float32))


@needs_nvvm
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(mlp_signatures(numba.types.float32)))
def test_mlp_and_array_kernels_compile_to_ptx(name, dtype):
    kernel = kernels_of_the_package()[name]
    ptx = compile_ptx(kernel, mlp_signatures(numba.from_dtype(np.dtype(dtype)))[name])
    assert ".visible .entry" in ptx
    if dtype == np.float32 and name not in FLOAT64_ACCUMULATORS:
        assert ".f64" not in ptx, "float64 arithmetic in a float32 kernel"
    if dtype == np.float32 and name in TILED_PRODUCTS:
        # the per-thread tile of accumulators lives in registers, not in local memory
        assert not re.search(r"\b(ld|st)\.local\b", ptx)
        assert "fma.rn.f32" in ptx


# the network's kernels that sum a loss in float64 on purpose
NETWORK_FLOAT64 = {"loss_rows", "loss_total"}


@needs_nvvm
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(device_kernel_signatures(numba.types.float32)))
def test_network_kernels_compile_to_ptx(name, dtype):
    """fastgd.cuda.network's kernels, with the types tests/cuda/test_cuda_network.py sees every launch take."""
    kernel = kernels_of_the_package(["fastgd.cuda.network"])[name]
    ptx = compile_ptx(kernel, device_kernel_signatures(numba.from_dtype(np.dtype(dtype)))[name])
    assert ".visible .entry" in ptx
    if dtype == np.float32 and name not in NETWORK_FLOAT64:
        assert ".f64" not in ptx, "float64 arithmetic in a float32 kernel"
    if dtype == np.float32 and name == "product":
        assert not re.search(r"\b(ld|st)\.local\b", ptx)
        assert "fma.rn.f32" in ptx


@needs_nvvm
def test_each_rule_kernel_is_launched_with_one_signature_per_dtype():
    assert RULE_KERNELS
    several = {key: signatures for key, (_, signatures) in RULE_KERNELS.items() if len(signatures) != 1}
    assert not several, "a kernel would compile again for another argument type"


@needs_nvvm
@pytest.mark.parametrize("key, signature", distinct_compiles(), ids=lambda v: "-".join(v) if isinstance(v, tuple)
                         and all(isinstance(part, str) for part in v) else "")
def test_rule_kernels_compile_to_ptx(key, signature):
    case, dtype, kernel_name = key
    ptx = compile_ptx(RULE_KERNELS[key][0], signature)
    assert ".visible .entry" in ptx
    # the element loops stay in float32; a per-tensor function sums its norms in float64 on purpose
    if dtype == "float32" and kernel_name == "loop_kernel":
        assert numba.types.float64 not in signature, f"{case} gets a float64 scalar"
        assert ".f64" not in ptx, f"float64 arithmetic in float32 {case}"


def test_default_tile_shape_fits_the_kernels():
    from fastgd.cuda import arrays, mlp

    assert mlp.ROW_THREADS == mlp.BLOCK_M // mlp.THREAD_M and mlp.COLUMN_THREADS == mlp.BLOCK_N // mlp.THREAD_N
    assert mlp.BLOCK_THREADS == mlp.ROW_THREADS * mlp.COLUMN_THREADS <= 1024
    assert mlp.BLOCK_THREADS & (mlp.BLOCK_THREADS - 1) == 0  # the penalty's tree reduction halves it
    assert (mlp.BLOCK_M * mlp.BLOCK_K) % mlp.BLOCK_THREADS == (mlp.BLOCK_N * mlp.BLOCK_K) % mlp.BLOCK_THREADS == 0
    assert (mlp.A_TILE_COLUMNS, mlp.B_TILE_COLUMNS) == (mlp.BLOCK_M + 1, mlp.BLOCK_N + 1)
    assert arrays.REDUCTION_THREADS & (arrays.REDUCTION_THREADS - 1) == 0


# -- without a GPU: a clear error, before anything changes -------------------------------------

no_gpu = pytest.mark.skipif(fastgd_cuda.is_available(), reason="a GPU can be used here: tests/cuda covers it")


class DeviceLike:
    """What a CuPy array or a torch CUDA tensor shows: a ``__cuda_array_interface__``."""

    __cuda_array_interface__ = dict(shape=(3,), typestr="<f4", data=(0, False), version=3)


@no_gpu
def test_without_a_gpu_is_available_is_false_and_says_why():
    assert fastgd_cuda.is_available() is False
    reason = fastgd_cuda.unavailable_reason()
    assert reason and ("driver" in reason or "numba-cuda" in reason or "NVVM" in reason or "device" in reason)


@no_gpu
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_device_cuda_without_a_gpu_is_refused_before_anything_changes(method):
    X, y = np.random.default_rng(0).normal(size=(10, 3)), np.arange(10) % 2
    estimator = MLPClassifier(hidden_layer_sizes=(4,), device="cuda")
    with pytest.raises(fastgd_cuda.CudaUnavailableError, match=re.escape('device="cuda" needs an NVIDIA GPU')) as info:
        getattr(estimator, method)(X, y, **({"classes": [0, 1]} if method == "partial_fit" else {}))
    assert fastgd_cuda.unavailable_reason() in str(info.value)
    assert not any(key.endswith("_") and not key.startswith("_") for key in vars(estimator))


@no_gpu
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_a_network_estimator_on_cuda_without_a_gpu_is_refused_before_anything_changes(method):
    X, y = np.random.default_rng(0).normal(size=(10, 3)), np.arange(10) % 2
    estimator = NetworkClassifier(device="cuda")
    with pytest.raises(fastgd_cuda.CudaUnavailableError, match=re.escape('device="cuda" needs an NVIDIA GPU')):
        getattr(estimator, method)(X, y, **({"classes": [0, 1]} if method == "partial_fit" else {}))
    assert not any(key.endswith("_") and not key.startswith("_") for key in vars(estimator))


@no_gpu
def test_a_gpu_array_without_a_gpu_is_refused_with_the_reason():
    with pytest.raises(fastgd_cuda.CudaUnavailableError, match="params of type DeviceLike needs an NVIDIA GPU"):
        optim.Adam(DeviceLike())


def test_an_unknown_device_is_refused():
    with pytest.raises(ValueError, match=r"The 'device' parameter of MLPClassifier must be a str among .*'cpu'.*"
                                         r"Got 'gpu' instead"):
        MLPClassifier(device="gpu").fit(np.zeros((4, 2)), [0, 1, 0, 1])


def _numba_cuda_that(is_available=False, error=None, n_devices=0, simulator=False):
    return types.SimpleNamespace(config=types.SimpleNamespace(ENABLE_CUDASIM=simulator),
                                 is_available=lambda: is_available, cuda_error=lambda: error, gpus=[None] * n_devices)


def _raise_import_error():
    raise ImportError("No module named 'numba_cuda'")


@pytest.mark.parametrize("numba_cuda, message", [
    (_raise_import_error, "numba-cuda is not installed (No module named 'numba_cuda'); install it with pip install"),
    (lambda: _numba_cuda_that(error="CUDA driver library cannot be found.\nEnsure that a compatible NVIDIA driver "
                              "is installed"), "no usable NVIDIA driver (CUDA driver library cannot be found. "
                                               "Ensure that a compatible NVIDIA driver is installed)"),
    (lambda: _numba_cuda_that(error="CUDA_ERROR_NO_DEVICE (100)"), "the NVIDIA driver found no CUDA device"),
    (lambda: _numba_cuda_that(), "the NVIDIA driver found no CUDA device"),
    (lambda: _numba_cuda_that(n_devices=1), "NVIDIA's NVVM compiler was not found"),
])
def test_each_reason_is_named(monkeypatch, numba_cuda, message):
    monkeypatch.setattr(fastgd_cuda, "_numba_cuda", numba_cuda)
    assert message in fastgd_cuda.unavailable_reason()
    assert not fastgd_cuda.is_available()
    with pytest.raises(fastgd_cuda.CudaUnavailableError, match=re.escape(message)):
        fastgd_cuda.require()


@pytest.mark.parametrize("numba_cuda", [lambda: _numba_cuda_that(is_available=True),
                                        lambda: _numba_cuda_that(simulator=True)])
def test_a_usable_gpu_or_the_simulator_has_no_reason(monkeypatch, numba_cuda):
    monkeypatch.setattr(fastgd_cuda, "_numba_cuda", numba_cuda)
    assert fastgd_cuda.unavailable_reason() is None and fastgd_cuda.is_available()
    fastgd_cuda.require()
