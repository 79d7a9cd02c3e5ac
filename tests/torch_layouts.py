"""A flat parameter vector as torch tensors, one per shape of a layout, and back: for the tests that meet torch and
pytorch-optimizer on several tensors. torch is imported by the functions, so importing this needs no torch."""

import numpy as np


def torch_tensors(flat, layout):
    """One torch tensor per shape of ``layout``, holding ``flat``'s values (its dtype), each requiring a gradient."""
    import torch

    tensors, start = [], 0
    for shape in layout:
        size = int(np.prod(shape))
        tensors.append(torch.tensor(flat[start:start + size].reshape(shape), requires_grad=True))
        start += size
    return tensors


def flat(tensors):
    """The tensors' values, concatenated in order into one NumPy vector."""
    return np.concatenate([tensor.detach().numpy().ravel() for tensor in tensors])


def set_gradients(tensors, gradient):
    """Give each tensor its span of the flat ``gradient`` as its ``.grad``."""
    import torch

    start = 0
    for tensor in tensors:
        size = tensor.numel()
        tensor.grad = torch.from_numpy(gradient[start:start + size].reshape(tensor.shape).copy())
        start += size
