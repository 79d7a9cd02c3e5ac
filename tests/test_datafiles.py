"""The IDX and CIFAR-10 readers on tiny files written here by hand (struct, gzip, pickle), and every refusal."""

import gzip
import os
import pickle
import struct

import numpy as np
import pytest

from fastgd import datafiles
from fastgd.datafiles import DataFileError
from fastgd.datasets import DatasetError


def idx_bytes(array, type_code=0x08):
    """An IDX file's bytes as LeCun's page describes them: 0, 0, type, ndim, big-endian int32 sizes, the data."""
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write(path, content, gzipped=False):
    path = str(path) + (".gz" if gzipped else "")
    with (gzip.open(path, "wb") if gzipped else open(path, "wb")) as file:
        file.write(content)
    return path


def mnist_like(directory, split="train", n=5, gzipped=False, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 4, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    image_name, label_name = datafiles.IDX_FILES[split]
    write(directory / image_name, idx_bytes(images), gzipped)
    write(directory / label_name, idx_bytes(labels), gzipped)
    return images, labels


@pytest.mark.parametrize("gzipped", [False, True], ids=["raw", "gzipped"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_idx_round_trip(tmp_path, split, gzipped):
    images, labels = mnist_like(tmp_path, split, gzipped=gzipped)
    X, y = datafiles.read_idx(tmp_path, split)
    assert X.shape == (5, 1, 4, 3) and X.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(X[:, 0], images)
    np.testing.assert_array_equal(y, labels)


def batch(n=4, seed=0, labels_as=list):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = labels_as(int(label) for label in rng.integers(0, 10, size=n))
    return {b"batch_label": b"training batch", b"data": data, b"labels": labels,
            b"filenames": [b"x.png"] * n}


def write_cifar(directory, protocol=2):
    """The six batches, each made with its own seed; protocol 2 is what CIFAR-10's own files use."""
    made = {}
    for index, name in enumerate(datafiles.CIFAR10_FILES["train"] + datafiles.CIFAR10_FILES["test"]):
        made[name] = batch(n=2 + index, seed=index)
        (directory / name).write_bytes(pickle.dumps(made[name], protocol=protocol))
    return made


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar_round_trip(tmp_path, protocol):
    made = write_cifar(tmp_path, protocol)
    X, y = datafiles.read_cifar10(tmp_path, "train")
    expected = np.concatenate([made[name][b"data"] for name in datafiles.CIFAR10_FILES["train"]])
    assert X.shape == (len(expected), 3, 32, 32) and X.dtype == np.uint8 and y.dtype == np.int64
    # CIFAR's row: 1024 red values, then green, then blue, each row-major over 32 x 32
    np.testing.assert_array_equal(X[:, 1, 2, 5], expected[:, 1024 + 2 * 32 + 5])
    np.testing.assert_array_equal(X.reshape(len(X), -1), expected)
    np.testing.assert_array_equal(y, sum((made[name][b"labels"] for name in datafiles.CIFAR10_FILES["train"]), []))
    X_test, y_test = datafiles.read_cifar10(tmp_path, "test")
    np.testing.assert_array_equal(X_test.reshape(len(X_test), -1), made["test_batch"][b"data"])


def test_cifar_folder_inside_the_directory_and_labels_as_an_array(tmp_path):
    (tmp_path / datafiles.CIFAR10_FOLDER).mkdir()
    made = write_cifar(tmp_path / datafiles.CIFAR10_FOLDER)
    np.testing.assert_array_equal(datafiles.read_cifar10(tmp_path, "test")[1], made["test_batch"][b"labels"])
    single = batch(labels_as=lambda labels: np.array(list(labels), dtype=np.int32))
    (tmp_path / "one").write_bytes(pickle.dumps(single, protocol=4))
    np.testing.assert_array_equal(datafiles.read_cifar_batch(tmp_path / "one")[1], single[b"labels"])


def test_errors_are_dataset_errors():
    assert issubclass(DataFileError, DatasetError) and issubclass(DataFileError, ValueError)


def refused(message, function, *arguments):
    with pytest.raises(DataFileError, match=message) as caught:
        function(*arguments)
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_idx_missing_files_name_what_is_expected(tmp_path):
    message = refused("no file train-images-idx3-ubyte or train-images-idx3-ubyte.gz", datafiles.read_idx, tmp_path)
    assert "t10k-labels-idx1-ubyte" in message
    refused("no such directory", datafiles.read_idx, tmp_path / "nowhere")
    refused("split must be 'train' or 'test'", datafiles.read_idx, tmp_path, "validation")
    mnist_like(tmp_path)
    os.remove(tmp_path / "train-labels-idx1-ubyte")
    refused("no file train-labels-idx1-ubyte", datafiles.read_idx, tmp_path)
    os.mkdir(tmp_path / "train-labels-idx1-ubyte")
    refused("not a regular file", datafiles.read_idx, tmp_path)


@pytest.mark.parametrize("gzipped", [False, True], ids=["raw", "gzipped"])
def test_idx_malformed_files_are_refused(tmp_path, gzipped):
    images, labels = mnist_like(tmp_path, gzipped=gzipped)
    suffix = ".gz" if gzipped else ""
    image_path = tmp_path / ("train-images-idx3-ubyte" + suffix)
    label_path = tmp_path / ("train-labels-idx1-ubyte" + suffix)
    good_images = idx_bytes(images)

    write(tmp_path / "train-images-idx3-ubyte", idx_bytes(images, type_code=0x0D), gzipped)  # floats
    refused(r"magic number is 0x00000d03, expected 0x00000803", datafiles.read_idx, tmp_path)
    write(tmp_path / "train-images-idx3-ubyte", idx_bytes(images[:, 0]), gzipped)  # 2-D: a labels-like file
    refused(r"not an IDX file of 3-D unsigned bytes", datafiles.read_idx, tmp_path)
    write(tmp_path / "train-images-idx3-ubyte", good_images[:-3], gzipped)
    refused(r"truncated: an array of 5 x 4 x 3 needs 60 bytes, the file holds 57", datafiles.read_idx, tmp_path)
    write(tmp_path / "train-images-idx3-ubyte", good_images[:9], gzipped)
    refused(r"truncated: the header needs 12 bytes", datafiles.read_idx, tmp_path)
    write(tmp_path / "train-images-idx3-ubyte", good_images + b"\0", gzipped)
    refused(r"bytes after the 5 x 4 x 3 array", datafiles.read_idx, tmp_path)
    write(tmp_path / "train-images-idx3-ubyte", good_images, gzipped)

    write(tmp_path / "train-labels-idx1-ubyte", idx_bytes(labels[:4]), gzipped)
    message = refused("holds 5 images but", datafiles.read_idx, tmp_path)
    assert str(image_path) in message and f"{label_path} holds 4 labels" in message
    write(tmp_path / "train-labels-idx1-ubyte", idx_bytes(np.array([0, 1, 2, 10, 3])), gzipped)
    refused("label 10 is not one of the 10 classes", datafiles.read_idx, tmp_path)


def test_a_truncated_gzip_stream_and_a_huge_header_are_refused(tmp_path):
    images, _ = mnist_like(tmp_path, gzipped=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-12])
    refused("damaged or truncated gzip file", datafiles.read_idx_file, path, 3)
    huge = struct.pack(">BBBB", 0, 0, 8, 3) + struct.pack(">3I", 2 ** 31, 2 ** 16, 2 ** 16)
    (tmp_path / "huge").write_bytes(huge)
    refused("more than this machine's memory can hold", datafiles.read_idx_file, tmp_path / "huge", 3)


CALLED = []


def mark():
    CALLED.append(True)
    return "ran"


class Payload:
    """What an untrusted pickle could carry: reading it must not call :func:`mark`."""

    def __reduce__(self):
        return (mark, ())


def test_cifar_refusals(tmp_path):
    made = write_cifar(tmp_path)
    path = tmp_path / "test_batch"
    os.remove(path)
    message = refused(f"{path}: no such file", datafiles.read_cifar10, tmp_path, "test")
    assert "data_batch_1" in message and "test_batch" in message

    def refuses(content, message):
        path.write_bytes(content if isinstance(content, bytes) else pickle.dumps(content, protocol=2))
        return refused(message, datafiles.read_cifar10, tmp_path, "test")

    good = pickle.dumps(made["test_batch"], protocol=2)
    refuses(good[: len(good) // 2], "truncated: the pickle ends early")
    refuses(b"this is not a pickle", "not a CIFAR-10 batch")
    refuses([1, 2, 3], "it holds a list, not a dictionary")
    refuses({b"data": made["test_batch"][b"data"]}, "no labels entry")
    refuses({b"labels": [1]}, "no data entry")
    refuses({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, r"data is a float32 array of \(2, 3072\)")
    refuses({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, "not n x 3072 bytes")
    refuses({b"data": b"\0" * 3072, b"labels": [0]}, "data is a bytes")
    refuses({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "holds 2 images but 1 labels")
    refuses({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "label 10 is not one of the 10 classes")
    refuses({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, -1]}, "label -1 is not one of the 10 classes")
    refuses({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, "cat"]}, "labels are not a list of whole")
    # a pickle naming any other callable is refused before the callable is looked up, let alone called
    message = refuses({b"data": Payload(), b"labels": [0]}, "which a CIFAR batch does not")
    assert "test_datafiles.mark" in message and not CALLED
    refuses({b"data": os.system}, "names posix.system|names nt.system")
