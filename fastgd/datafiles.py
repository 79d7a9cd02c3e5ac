"""Readers for the image files of the full DeepOBS problems: IDX (MNIST, Fashion-MNIST) and CIFAR-10's python batches.

Each reader takes the directory the user downloaded the files to and returns ``(X, y)``: X an ``uint8`` array of
shape (n, channels, height, width), channels first as :mod:`fastgd.networks` expects (scale it to floats where the
network is built), y the ``int64`` class of each image.

* :func:`read_idx` reads LeCun's IDX files, the format of MNIST and Fashion-MNIST (the same four names for both),
  each gzipped (``.gz``, as downloaded) or not: ``train-images-idx3-ubyte`` and ``train-labels-idx1-ubyte`` for
  the training part, ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` for the test part. Images come as
  (n, 1, rows, columns).
* :func:`read_cifar10` reads CIFAR-10's python version, ``data_batch_1`` to ``data_batch_5`` for the training part
  and ``test_batch`` for the test part, in the directory or in its ``cifar-10-batches-py`` folder (as the archive
  unpacks). Images come as (n, 3, 32, 32).

A CIFAR batch is a pickle: it is read by :class:`_BatchUnpickler`, which builds only dictionaries, lists, strings,
bytes, numbers and NumPy arrays of plain dtypes, and refuses any other class a file names before calling it, so
a file that is not a CIFAR batch cannot run code.

What cannot be used is refused with a :class:`DataFileError` (a :class:`fastgd.datasets.DatasetError`, which the
command line reports in one line, exit status 2), naming the file: a missing file (and the files expected), a path
that is not a regular file, a wrong magic number, a truncated file or bytes after the data, images and labels of
different counts or sizes, a label outside the classes, a pickle that is not a CIFAR batch.

    >>> from fastgd import datafiles
    >>> datafiles.IDX_FILES["test"]
    ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte')
"""

import gzip
import io
import math
import os
import pickle
import stat
import zlib

import numpy as np

from fastgd.validation import DatasetError
from fastgd.machine import physical_memory_bytes

__all__ = ["DataFileError", "IDX_FILES", "CIFAR10_FILES", "CIFAR10_FOLDER", "read_idx", "read_idx_file",
           "read_cifar10", "read_cifar_batch"]

SPLITS = ("train", "test")
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
CIFAR10_FILES = {"train": tuple(f"data_batch_{index}" for index in range(1, 6)), "test": ("test_batch",)}
CIFAR10_FOLDER = "cifar-10-batches-py"
N_CLASSES = 10
CIFAR_IMAGE = (3, 32, 32)
# the IDX type code of unsigned bytes: MNIST's and Fashion-MNIST's only one
_IDX_UBYTE = 0x08
# an IDX file's header may promise any size: more than this share of the memory is refused before it is read
_MAX_SHARE_OF_MEMORY = 0.5


class DataFileError(DatasetError):
    """An image data file that cannot be used; the message is one line naming the file and the problem."""


def _check_split(split):
    if split not in SPLITS:
        raise DataFileError(f"split must be 'train' or 'test', got {split!r}")


def _check_directory(directory, what):
    if not isinstance(directory, (str, os.PathLike)):
        raise DataFileError(f"the {what} directory must be a path, got {directory!r}")
    if not os.path.isdir(directory):
        raise DataFileError(f"{directory}: no such directory (it should hold {what})")
    return os.fspath(directory)


def _check_regular(path):
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        raise DataFileError(f"{path}: cannot be read: {error.strerror}") from None
    if not stat.S_ISREG(mode):
        raise DataFileError(f"{path}: not a regular file")


def _check_fits(path, n_bytes):
    if n_bytes > _MAX_SHARE_OF_MEMORY * physical_memory_bytes():
        raise DataFileError(f"{path}: its header promises {n_bytes / 2 ** 30:.3g} GiB, more than this machine's "
                            "memory can hold")


# ---------------------------------------------------------------- IDX

def _idx_path(directory, name):
    """The path of IDX file ``name`` in ``directory``, gzipped or not; DataFileError naming both when neither is."""
    for candidate in (name, name + ".gz"):
        path = os.path.join(directory, candidate)
        if os.path.lexists(path):
            return path
    raise DataFileError(f"{directory}: no file {name} or {name}.gz (MNIST and Fashion-MNIST need "
                        f"{', '.join(IDX_FILES['train'] + IDX_FILES['test'])}, each gzipped or not)")


def _read_exactly(stream, n_bytes, path, what):
    """``n_bytes`` from ``stream``: DataFileError when the file ends before them."""
    data = stream.read(n_bytes)
    if len(data) < n_bytes:
        raise DataFileError(f"{path}: truncated: {what} needs {n_bytes} bytes, the file holds {len(data)}")
    return data


def _idx_array(stream, path, ndim):
    magic = _read_exactly(stream, 4, path, "the magic number")
    if magic[0] != 0 or magic[1] != 0 or magic[2] != _IDX_UBYTE or magic[3] != ndim:
        raise DataFileError(f"{path}: not an IDX file of {ndim}-D unsigned bytes: its magic number is "
                            f"0x{magic.hex()}, expected 0x0000{_IDX_UBYTE:02x}{ndim:02x}")
    shape = tuple(int(size) for size in np.frombuffer(_read_exactly(stream, 4 * ndim, path, "the header"), ">u4"))
    n_bytes = math.prod(shape)
    _check_fits(path, n_bytes)
    data = _read_exactly(stream, n_bytes, path, f"an array of {' x '.join(map(str, shape))}")
    if stream.read(1):
        raise DataFileError(f"{path}: bytes after the {' x '.join(map(str, shape))} array its header announces")
    return np.frombuffer(data, np.uint8).reshape(shape)


def read_idx_file(path, ndim):
    """The ``uint8`` array of an IDX file of ``ndim`` dimensions (gzipped when its name ends in ``.gz``).

    Raises :class:`DataFileError` naming the file for a missing or irregular file, a magic number other than
    unsigned bytes in ``ndim`` dimensions, a truncated file (or gzip stream), bytes after the data.
    """
    _check_regular(path)
    try:
        with open(path, "rb") as raw:
            stream = gzip.GzipFile(fileobj=raw) if os.fspath(path).endswith(".gz") else raw
            return _idx_array(stream, path, ndim)
    except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise DataFileError(f"{path}: a damaged or truncated gzip file ({error})") from None


def read_idx(directory, split="train", n_classes=N_CLASSES):
    """``(X, y)`` of the ``split`` part ("train" or "test") of an MNIST or Fashion-MNIST directory.

    X is ``uint8`` of shape (n, 1, rows, columns), y ``int64`` of shape (n,). Raises :class:`DataFileError`
    naming the file: one missing (with the names expected), malformed (:func:`read_idx_file`), images and labels
    of different counts, a label not below ``n_classes``.
    """
    _check_split(split)
    directory = _check_directory(directory, "MNIST or Fashion-MNIST's IDX files")
    images_path, labels_path = (_idx_path(directory, name) for name in IDX_FILES[split])
    images = read_idx_file(images_path, 3)
    labels = read_idx_file(labels_path, 1)
    if len(images) != len(labels):
        raise DataFileError(f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels")
    _check_labels(labels, labels_path, n_classes)
    return images[:, np.newaxis], labels.astype(np.int64)


def _check_labels(labels, path, n_classes):
    if len(labels) and int(np.max(labels)) >= n_classes:
        raise DataFileError(f"{path}: label {int(np.max(labels))} is not one of the {n_classes} classes 0 to "
                            f"{n_classes - 1}")


# ---------------------------------------------------------------- CIFAR-10

def _latin1_encode(text, encoding="latin1"):
    """Python 3's protocol-2 pickles store bytes as ``_codecs.encode(text, "latin1")``: that call and no other."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError("_codecs.encode with anything but a string and latin1")
    return text.encode("latin1")


def _numpy_reconstructors():
    core = getattr(np, "_core", None) or np.core  # NumPy 2's name, then NumPy 1's
    return {"_reconstruct": core.multiarray._reconstruct, "_frombuffer": core.numeric._frombuffer}


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler of CIFAR batches: dictionaries, lists, strings, bytes, numbers and NumPy arrays, nothing else.

    Containers and scalars are pickle opcodes that call nothing; of the named callables, it gives only NumPy's
    array reconstructors, ``numpy.ndarray``, ``numpy.dtype`` and the latin-1 ``_codecs.encode`` of Python 3's
    protocol-2 bytes. Any other name, a file that is not a CIFAR batch, is refused before anything is looked up.
    """

    def find_class(self, module, name):
        reconstructors = _numpy_reconstructors()
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "_reconstruct":
            return reconstructors[name]
        if module in ("numpy.core.numeric", "numpy._core.numeric") and name == "_frombuffer":
            return reconstructors[name]
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if module == "_codecs" and name == "encode":
            return _latin1_encode
        raise pickle.UnpicklingError(f"it names {module}.{name}, which a CIFAR batch does not")


def read_cifar_batch(path):
    """``(X, y)`` of one CIFAR-10 python batch: X ``uint8`` (n, 3, 32, 32), y ``int64`` (n,).

    The pickle is read by a restricted unpickler (see the module's text). Raises :class:`DataFileError` naming the
    file for a missing or irregular file, a truncated pickle, one that names anything but NumPy arrays, one that is
    not a dictionary of ``data`` (n x 3072 bytes) and ``labels`` (n classes from 0 to 9).
    """
    if not os.path.lexists(path):
        raise DataFileError(f"{path}: no such file (CIFAR-10's python version has "
                            f"{', '.join(CIFAR10_FILES['train'] + CIFAR10_FILES['test'])})")
    _check_regular(path)
    with open(path, "rb") as file:
        content = file.read()
    try:
        batch = _BatchUnpickler(io.BytesIO(content), encoding="bytes").load()
    except Exception as error:  # a malformed pickle raises nearly anything; every one means the same here
        if isinstance(error, EOFError) or "truncated" in str(error):
            raise DataFileError(f"{path}: truncated: the pickle ends early") from None
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataFileError(f"{path}: not a CIFAR-10 batch: {detail}") from None
    return _batch_arrays(batch, path)


def _batch_arrays(batch, path):
    if not isinstance(batch, dict):
        raise DataFileError(f"{path}: not a CIFAR-10 batch: it holds a {type(batch).__name__}, not a dictionary")
    missing = [key.decode() for key in (b"data", b"labels") if key not in batch]
    if missing:
        raise DataFileError(f"{path}: not a CIFAR-10 batch: no {' and no '.join(missing)} entry")
    data, labels = batch[b"data"], batch[b"labels"]
    n_pixels = math.prod(CIFAR_IMAGE)
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == n_pixels):
        described = f"{data.dtype} array of {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataFileError(f"{path}: not a CIFAR-10 batch: data is a {described}, not n x {n_pixels} bytes")
    if not (isinstance(labels, (list, np.ndarray))
            and all(isinstance(label, (int, np.integer)) and not isinstance(label, bool) for label in labels)):
        raise DataFileError(f"{path}: not a CIFAR-10 batch: labels are not a list of whole numbers")
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(labels) != len(data):
        raise DataFileError(f"{path}: holds {len(data)} images but {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() >= N_CLASSES):
        bad = int(labels.min() if labels.min() < 0 else labels.max())
        raise DataFileError(f"{path}: label {bad} is not one of the {N_CLASSES} classes 0 to {N_CLASSES - 1}")
    return data.reshape((len(data),) + CIFAR_IMAGE), labels


def read_cifar10(directory, split="train"):
    """``(X, y)`` of the ``split`` part ("train": ``data_batch_1`` to ``_5``; "test": ``test_batch``) of CIFAR-10.

    ``directory`` holds the batches or their ``cifar-10-batches-py`` folder. X is ``uint8`` (n, 3, 32, 32), y
    ``int64`` (n,). Raises :class:`DataFileError` naming the file, as :func:`read_cifar_batch`.
    """
    _check_split(split)
    directory = _check_directory(directory, "CIFAR-10's python batches")
    nested = os.path.join(directory, CIFAR10_FOLDER)
    if not os.path.lexists(os.path.join(directory, CIFAR10_FILES[split][0])) and os.path.isdir(nested):
        directory = nested
    parts = [read_cifar_batch(os.path.join(directory, name)) for name in CIFAR10_FILES[split]]
    return np.concatenate([X for X, _ in parts]), np.concatenate([y for _, y in parts])
