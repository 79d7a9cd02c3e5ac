"""The full DeepOBS problems (mnist_2c2d, fmnist_2c2d, cifar10_3c3d) on the user's own files: where they are looked
for, how the images are prepared (against DeepOBS's formulas written out here), and what happens without them."""

import numpy as np
import pytest

from fastgd import datafiles, datasets, problems
from tests.cli_harness import assert_refused, run_command
from tests.test_datafiles import idx_bytes, write, write_cifar


def mnist_files(folder, n_train=30, n_test=10, gzipped=False):
    """IDX files of 28×28 images in ``folder``: {split: (images, labels)}; labels cycle through the ten classes."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(str(folder)))
    made = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        image_name, label_name = datafiles.IDX_FILES[split]
        write(folder / image_name, idx_bytes(images), gzipped)
        write(folder / label_name, idx_bytes(labels), gzipped)
        made[split] = images, labels
    return made


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTGD_DATA_DIR", str(tmp_path / "deepobs"))
    return tmp_path / "deepobs"


@pytest.mark.parametrize("name, folder", [("mnist_2c2d", "mnist"), ("fmnist_2c2d", "fmnist")])
def test_mnist_and_fashion_mnist_are_read_from_the_data_directory_as_pixels_over_255(data_dir, name, folder):
    made = mnist_files(data_dir / folder, gzipped=name == "fmnist_2c2d")
    data = problems.get(name).load()
    for X, y, (images, labels) in ((data.X_train, data.y_train, made["train"]), (data.X_test, data.y_test,
                                                                                  made["test"])):
        assert X.shape == (len(images), 784)
        np.testing.assert_array_equal(X, images.reshape(len(images), 784) / 255.0)  # DeepOBS: x / 255
        np.testing.assert_array_equal(y, labels)
    assert data.n_classes == 10 and data.task == "classification"


def test_cifar10_is_standardised_image_by_image_as_tensorflow_does(data_dir):
    made = write_cifar(_made_dir(data_dir / "cifar10"))
    data = problems.get("cifar10_3c3d").load()
    raw = np.concatenate([made[name][b"data"] for name in datafiles.CIFAR10_FILES["train"]]).astype(np.float64)
    # tf.image.per_image_standardization: (x - mean) / max(stddev, 1 / sqrt(number of elements)), per image
    expected = np.stack([(image - image.mean()) / max(image.std(), 1 / np.sqrt(image.size)) for image in raw])
    np.testing.assert_allclose(data.X_train, expected, rtol=1e-12, atol=1e-12)
    assert data.X_test.shape == (len(made["test_batch"][b"labels"]), 3072)
    # the classes present, numbered in order (these few images do not hold all ten)
    classes = np.unique(np.concatenate([made[name][b"labels"] for name in made]))
    np.testing.assert_array_equal(data.y_test, np.searchsorted(classes, made["test_batch"][b"labels"]))
    # a constant image: its deviation is 0, so it is divided by 1/√3072, and comes out all zeros
    constant = np.full((1, 3, 32, 32), 7, np.uint8)
    assert not datasets.deepobs_images("deepobs_cifar10", constant).any()


def _made_dir(folder):
    folder.mkdir(parents=True)
    return folder


def test_the_files_are_read_again_when_they_change_or_the_data_directory_moves(data_dir, tmp_path, monkeypatch):
    first = mnist_files(data_dir / "mnist")
    np.testing.assert_array_equal(problems.get("mnist_2c2d").load().y_test, first["test"][1])
    elsewhere = tmp_path / "other"
    other = mnist_files(elsewhere / "mnist", n_test=20)
    monkeypatch.setenv("FASTGD_DATA_DIR", str(elsewhere))
    assert len(problems.get("mnist_2c2d").load().y_test) == len(other["test"][1]) == 20


def test_a_data_set_may_name_its_own_folder(tmp_path):
    made = mnist_files(tmp_path / "anywhere")
    source = datasets.Source("mine", loader="deepobs_fmnist", standardise=False,
                             options={"directory": str(tmp_path / "anywhere")})
    np.testing.assert_array_equal(datasets.make(source).y_train, made["train"][1])


@pytest.mark.parametrize("settings, message", [
    (dict(options={"root": "x"}), "the only option is directory (the folder of the files), got ['root']"),
    (dict(options={"directory": 3}), "directory must be a folder's path, got 3"),
    (dict(test_size=0.5), "the files' own training and test parts are the split"),
    (dict(standardise=True), "give standardise = false"),
])
def test_a_source_of_the_images_refuses_what_it_cannot_take(settings, message):
    arguments = dict(standardise=False) | settings
    with pytest.raises(datasets.DatasetError) as refused:
        datasets.Source("mine", loader="deepobs_mnist", **arguments)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_without_the_files_a_problem_says_where_it_looked_in_one_line(data_dir):
    with pytest.raises(datasets.DatasetError) as refused:
        problems.get("cifar10_3c3d").load()
    message = str(refused.value)
    assert "\n" not in message and str(data_dir / "cifar10") in message and "FASTGD_DATA_DIR" in message


def test_a_malformed_file_is_named(data_dir):
    mnist_files(data_dir / "mnist")
    (data_dir / "mnist" / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08")
    with pytest.raises(datafiles.DataFileError) as refused:
        problems.get("mnist_2c2d").load()
    assert "t10k-labels-idx1-ubyte" in str(refused.value)


def test_fastgd_problems_lists_them_with_where_their_files_are_looked_for(data_dir, tmp_path):
    mnist_files(data_dir / "mnist")
    code, out, err = run_command(["problems"], tmp_path)
    assert code == 0, err
    blocks = out.split("\n" + "mnist_2c2d: ")[1]
    assert blocks.startswith("DeepOBS's 2c2d on MNIST (your files)\n    data     30 training / 10 test rows, samples "
                             "of shape (1, 28, 28), 10 classes")
    fashion = out.split("fmnist_2c2d: ")[1].splitlines()
    assert fashion[1] == (f"    data     your files, looked for in {data_dir / 'fmnist'}: not there (FASTGD_DATA_DIR "
                          "names the folder that holds mnist/, fmnist/ and cifar10/)")
    assert fashion[2] == "    network  mnist_2c2d, 3,274,634 parameters"
    cifar = out.split("cifar10_3c3d: ")[1].splitlines()
    assert cifar[2] == "    network  cifar10_3c3d, alpha 0.256, 895,210 parameters"


def test_compare_on_a_problem_without_its_files_is_refused_in_one_line(tmp_path):
    assert_refused(["compare", "--problem", "mnist_2c2d", "--out", str(tmp_path / "out")], tmp_path,
                   "MNIST's IDX files are your own copy", in_process=False,
                   env={"FASTGD_DATA_DIR": str(tmp_path / "nothing")})


def test_a_sweep_trains_the_2c2d_on_the_files(tmp_path):
    """The loader, the known network on its images (784 columns as (1, 28, 28)) and a sweep's run, end to end."""
    mnist_files(tmp_path / "files" / "mnist", n_train=40, n_test=10)
    config = tmp_path / "deepobs.toml"
    config.write_text(f"""
name = "deepobs"
rules = ["sgd"]
learning_rates = [0.01]
seeds = [0]
epochs = 1
dtype = "float32"

[datasets.mnist_files]
loader = "deepobs_mnist"
standardise = false
options = {{directory = "{tmp_path / 'files' / 'mnist'}"}}
model = "mnist_2c2d"
batch_sizes = [16]

[targets]
mnist_files = 0.1
""")
    code, _, err = run_command(["sweep", str(config), "--store", str(tmp_path / "runs.db"), "--jobs", "1"], tmp_path)
    assert code == 0, err
    from fastgd.sweep import load_runs

    runs = load_runs(tmp_path / "runs.db")
    assert len(runs) == 1 and runs["status"].item() == "ok" and np.isfinite(runs["final_loss"].item())


def test_images_of_another_size_than_the_networks_are_refused_in_one_line(data_dir, tmp_path):
    folder = data_dir / "mnist"
    folder.mkdir(parents=True)
    for split, n in (("train", 20), ("test", 10)):
        image_name, label_name = datafiles.IDX_FILES[split]
        write(folder / image_name, idx_bytes(np.zeros((n, 20, 20), np.uint8)))
        write(folder / label_name, idx_bytes((np.arange(n) % 10).astype(np.uint8)))
    assert_refused(["compare", "--problem", "mnist_2c2d", "--out", str(tmp_path / "out")], tmp_path,
                   "mnist_2c2d takes inputs of shape (1, 28, 28), 784 values per sample; the data set has 400 columns")
