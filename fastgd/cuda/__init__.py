"""fastgd on NVIDIA GPUs, with ``numba.cuda``: the same math as the CPU kernels.

    from fastgd import cuda as fastgd_cuda, optim
    fastgd_cuda.is_available()                  # False without a GPU, driver and numba-cuda
    params = numba.cuda.to_device(theta)        # or a CuPy array, a torch CUDA tensor...
    opt = optim.Adam(params, lr=1e-3)           # one kernel launch per step, in place
    MLPClassifier(device="cuda").fit(X, y)      # whole training on the device
    NetworkClassifier(network, device="cuda")   # a declared network's, too

* :mod:`fastgd.cuda.rules`: every rule of :data:`fastgd.optim.OPTIMIZERS` as
  a grid-stride kernel over the flat parameter vector (and, for per-tensor
  rules, one thread per tensor), generated from the rule's definition with
  the same scalar element functions as the CPU kernels, behind launchers
  with the CPU kernels' signatures; :mod:`fastgd.cuda.blas` gives their
  matrix products.
* :mod:`fastgd.cuda.mlp`: tiled shared-memory matrix products with fused
  epilogues (bias and activation; weight decay and bias gradients;
  activation derivatives), softmax and cross-entropy per row, the batch
  gather.
* :mod:`fastgd.cuda.train`: a whole training epoch as kernel launches, with
  the data on the device and one host synchronisation per epoch.
* :mod:`fastgd.cuda.network`: a declared network's pass (:mod:`fastgd.networks`):
  dense layers and convolutions (im2col and the tiled product), pooling,
  activations and the losses, over the CPU pass's plan and θ layout; its
  epoch is :func:`fastgd.cuda.train.train_network_epoch`.

Without a usable GPU, :func:`require` raises :class:`CudaUnavailableError`
saying why (numba-cuda missing, no driver, no device), so that
``device="cuda"`` fails with that message rather than deep inside Numba.
This module imports ``numba.cuda`` only when called.
"""

__all__ = ["CudaUnavailableError", "is_available", "unavailable_reason", "require", "is_device_array",
           "as_device_array"]


class CudaUnavailableError(RuntimeError):
    """``device="cuda"`` (or a device array) was asked for where no GPU can be used."""


def _numba_cuda():
    from numba import cuda

    return cuda


def unavailable_reason():
    """Why the CUDA path cannot run here, in one sentence; None when it can."""
    try:
        cuda = _numba_cuda()
    except ImportError as error:
        return f"numba-cuda is not installed ({error}); install it with pip install 'fastgd[cuda]'"
    if cuda.config.ENABLE_CUDASIM:
        return None
    if cuda.is_available():
        return None
    error = cuda.cuda_error()
    if error is not None:
        message = " ".join(str(error).split())
        if "CUDA_ERROR_NO_DEVICE" in message:
            return f"the NVIDIA driver found no CUDA device ({message})"
        return f"no usable NVIDIA driver ({message})"
    try:
        n_devices = len(cuda.gpus)
    except Exception as error:  # the driver loaded but could not list devices
        return f"the NVIDIA driver could not list the GPUs ({error})"
    if n_devices == 0:
        return "the NVIDIA driver found no CUDA device"
    return "NVIDIA's NVVM compiler was not found: install numba-cuda with its toolkit, pip install 'fastgd[cuda]'"


def is_available():
    """True when fastgd's CUDA kernels can run here (or under the CUDA simulator)."""
    return unavailable_reason() is None


def require(what='device="cuda"'):
    """Raise :class:`CudaUnavailableError` naming ``what`` and the reason, unless a GPU can be used."""
    reason = unavailable_reason()
    if reason is not None:
        raise CudaUnavailableError(f"{what} needs an NVIDIA GPU, and none can be used here: {reason}")


def is_device_array(obj):
    """True for a numba device array or any object with ``__cuda_array_interface__`` (CuPy, torch CUDA)."""
    if getattr(obj, "__cuda_ndarray__", False):  # numba's device arrays, the simulator's too
        return True
    try:
        return hasattr(obj, "__cuda_array_interface__")
    except Exception:  # torch raises RuntimeError, not AttributeError, for a tensor that requires grad
        return True


def as_device_array(obj, name="array"):
    """A numba device array viewing ``obj``'s memory (no copy); ``obj`` itself if it is one.

    Reading another library's array syncs on the stream it names in its
    ``__cuda_array_interface__``, so that pending work on it is finished.
    """
    if getattr(obj, "__cuda_ndarray__", False):
        return obj
    require(f"{name} of type {type(obj).__name__}")
    cuda = _numba_cuda()
    try:
        return cuda.as_cuda_array(obj)
    except Exception as error:
        raise TypeError(f"{name}: cannot read the __cuda_array_interface__ of {type(obj).__name__}: "
                        f"{error}") from None
