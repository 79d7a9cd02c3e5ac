"""Data sets from files, frames, arrays, scikit-learn and MNIST-1D: prepared as pandas and NumPy by hand would.

The oracles are written out here with pandas and NumPy (``pd.get_dummies``, means
and deviations of the training rows) and scikit-learn's ``train_test_split``,
not with the ColumnTransformer the loaders use.
"""

import math
import dataclasses
import random

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from fastgd import datasets
from fastgd.datasets import DatasetError


def table(n_rows=120, seed=0):
    """A table of what a user brings: numbers, text categories, booleans, a text label."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "age": rng.normal(40.0, 12.0, n_rows),
        "visits": rng.integers(0, 30, n_rows),
        "city": rng.choice(["paris", "lyon", "nice", "lille"], n_rows),
        "member": rng.choice([True, False], n_rows),
        "customer_id": np.arange(n_rows),
    })
    frame["churned"] = np.where(frame["age"] + rng.normal(0.0, 8.0, n_rows) > 42.0, "yes", "no")
    return frame


def prepared_by_hand(frame, target, numeric, categorical, test_size=0.25, seed=0, stratify=True):
    """The oracle: a stratified split of the rows, numeric columns standardised with the training rows' mean and
    (population) deviation, categories one-hot encoded with the training rows' categories (sorted)."""
    labels = frame[target].to_numpy()
    train, test = train_test_split(np.arange(len(frame)), test_size=test_size, random_state=seed,
                                   stratify=labels if stratify else None)
    parts = []
    for rows in (train, test):
        numbers = frame[numeric].to_numpy(dtype=float)[rows]
        reference = frame[numeric].to_numpy(dtype=float)[train]
        deviation = reference.std(axis=0)
        standardised = (numbers - reference.mean(axis=0)) / np.where(deviation > 0, deviation, 1.0)
        dummies = [pd.get_dummies(frame[column].iloc[rows].astype(str)).reindex(
            columns=sorted(frame[column].iloc[train].astype(str).unique()), fill_value=False).to_numpy(float)
            for column in categorical]
        parts.append(np.hstack([standardised, *dummies]))
    return parts, labels[train], labels[test]


def assert_same_data(first, second):
    for name in ("X_train", "X_test", "y_train", "y_test"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    assert first.content_hash == second.content_hash


# -- loaders -----------------------------------------------------------------------------------

def test_a_csv_table_is_split_standardised_and_one_hot_encoded_as_by_hand(tmp_path):
    frame = table()
    frame.to_csv(tmp_path / "churn.csv", index=False)
    data = datasets.read(tmp_path / "churn.csv", target="churned", drop=["customer_id"])
    (X_train, X_test), y_train, y_test = prepared_by_hand(frame, "churned", ["age", "visits"], ["city", "member"])
    assert data.name == "churn.csv" and data.task == "classification" and data.n_classes == 2
    np.testing.assert_allclose(data.X_train, X_train, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(data.X_test, X_test, rtol=1e-12, atol=1e-12)
    classes = np.array(["no", "yes"])
    np.testing.assert_array_equal(classes[data.y_train], y_train)
    np.testing.assert_array_equal(classes[data.y_test], y_test)
    assert data.X_train.dtype == np.float64 and not data.X_train.flags.writeable
    assert data.X_test.shape == (30, 2 + 4 + 2)


def test_a_table_of_numbers_alone_is_standardised_as_by_hand(tmp_path):
    frame = table().drop(columns=["city", "member"])
    frame.to_csv(tmp_path / "numbers.csv", index=False)
    data = datasets.read(tmp_path / "numbers.csv", target="churned")
    (X_train, X_test), _, _ = prepared_by_hand(frame, "churned", ["age", "visits", "customer_id"], [])
    np.testing.assert_allclose(data.X_train, X_train, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(data.X_test, X_test, rtol=1e-12, atol=1e-12)
    assert data.X_train.flags.c_contiguous


def test_the_standardiser_fits_what_scikit_learns_standard_scaler_fits():
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    n_rows = 3 * datasets._VARIANCE_BLOCK_ROWS // 2  # the variance summed over two blocks
    X = np.column_stack([rng.normal(1e3, 2.0, n_rows), np.full(n_rows, 0.1), rng.integers(0, 3, n_rows)])
    expected, scaler = StandardScaler().fit(X), datasets._numpy_standard_scaler()().fit(X)
    for name in ("mean_", "var_", "scale_"):
        np.testing.assert_allclose(getattr(scaler, name), getattr(expected, name), rtol=1e-12, atol=1e-20)
    assert scaler.scale_[1] == 1.0 and scaler.n_samples_seen_ == n_rows  # a constant column is left unscaled
    np.testing.assert_allclose(scaler.transform(X.copy()), expected.transform(X), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("layout", ["columns contiguous (a pandas block)", "rows contiguous (a NumPy array)"])
def test_the_table_kernels_standardise_the_split_rows_as_scikit_learns_standard_scaler(layout):
    from sklearn.preprocessing import StandardScaler

    from fastgd.kernels.tables import SUM_BLOCK_ROWS, scatter_standardised, training_moments

    rng = np.random.default_rng(1)
    n_rows = 5 * SUM_BLOCK_ROWS // 2 + 3  # sums over several blocks, the last one short
    X = np.column_stack([rng.normal(1e3, 2.0, n_rows), np.full(n_rows, 0.1), rng.integers(0, 3, n_rows),
                         rng.normal(0.0, 1e-3, n_rows)])
    labels = rng.integers(0, 3, n_rows)
    train, test = train_test_split(np.arange(n_rows), test_size=0.25, random_state=0, stratify=labels)
    columns = np.ascontiguousarray(X.T) if layout.startswith("columns") else X.T
    destination = np.empty(n_rows, dtype=np.int64)
    destination[train] = np.arange(train.size)
    destination[test] = np.arange(train.size, n_rows)

    mean, squares = training_moments(columns, destination, train.size)
    expected = StandardScaler().fit(X[train])
    # scikit-learn's mean is summed row after row: it is only as close as its own rounding error
    np.testing.assert_allclose(mean, expected.mean_, rtol=1e-12)
    np.testing.assert_allclose(mean, [math.fsum(column) / train.size for column in X[train].T], rtol=1e-14)
    np.testing.assert_allclose(squares / train.size, expected.var_, rtol=1e-10, atol=1e-28)
    scale = datasets._scale(mean, squares / train.size, train.size)
    assert scale[1] == 1.0  # the constant column is left unscaled, as scikit-learn leaves it
    X_train, X_test = np.full((train.size, 4), np.nan), np.full((test.size, 4), np.nan)
    assert scatter_standardised(columns, destination, mean, scale, X_train, X_test)
    # every row written, in the split's order
    np.testing.assert_allclose(X_train, expected.transform(X[train]), rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(X_test, expected.transform(X[test]), rtol=1e-10, atol=1e-11)


def test_the_scatter_says_when_a_standardised_value_overflows():
    from fastgd.kernels.tables import scatter_standardised

    columns = np.array([[1e308, -1e308, 0.0, 1.0]])
    destination = np.array([0, 3, 1, 2])  # three training rows, one test row
    X_train, X_test = np.empty((3, 1)), np.empty((1, 1))
    assert not scatter_standardised(columns, destination, np.array([-1e308]), np.array([1.0]), X_train, X_test)
    assert scatter_standardised(columns, destination, np.array([0.0]), np.array([1.0]), X_train, X_test)
    np.testing.assert_array_equal(X_train[:, 0], [1e308, 0.0, 1.0])
    np.testing.assert_array_equal(X_test[:, 0], [-1e308])


def test_a_table_of_numbers_is_refused_when_a_value_is_not_finite_or_cannot_be_standardised():
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"age": rng.normal(40.0, 12.0, 40), "income": rng.normal(3e4, 1e4, 40),
                          "label": [0, 1] * 20})
    for value in (np.nan, np.inf, -np.inf):
        bad = frame.copy()
        bad.loc[9, "income"] = value
        with pytest.raises(DatasetError, match=r"^data set 'frame': column 'income' holds NaN or infinity \(1 row, "
                                               r"the first is row 10\)$"):
            datasets.from_frame(bad, "label")
    huge = frame.assign(income=np.where(np.arange(40) % 2, 1.7e308, -1.7e308))  # the mean's deviation overflows
    with pytest.raises(DatasetError, match="^data set 'frame': column 'income' holds values too large to standardise"):
        datasets.from_frame(huge, "label")


def test_a_table_of_numbers_of_several_dtypes_is_standardised_as_by_hand():
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"count": rng.integers(0, 50, 200), "rate": rng.normal(0.5, 0.1, 200).astype(np.float32),
                          "score": rng.normal(1e6, 3.0, 200), "label": rng.choice(["a", "b", "c"], 200)})
    data = datasets.from_frame(frame, "label")
    (X_train, X_test), y_train, y_test = prepared_by_hand(frame, "label", ["count", "rate", "score"], [])
    np.testing.assert_allclose(data.X_train, X_train, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(data.X_test, X_test, rtol=1e-9, atol=1e-9)
    assert data.X_train.flags.c_contiguous and not data.X_test.flags.writeable


def test_a_category_seen_only_in_the_test_part_is_encoded_as_zeros():
    frame = table(40)
    frame["city"] = "paris"
    data = datasets.from_frame(frame, "churned", drop=["customer_id"])
    test_rows = train_test_split(np.arange(40), test_size=0.25, random_state=0, stratify=frame["churned"])[1]
    frame.loc[test_rows[0], "city"] = "brest"
    with_unseen = datasets.from_frame(frame, "churned", drop=["customer_id"])
    # the city's one column (paris) reads 0 for brest, 1 everywhere else
    np.testing.assert_array_equal(with_unseen.X_test[:, 2], (frame.loc[test_rows, "city"] == "paris").to_numpy())
    np.testing.assert_array_equal(with_unseen.X_train, data.X_train)


def test_parquet_csv_and_a_data_frame_give_the_same_data_set(tmp_path):
    frame = table()
    frame.to_csv(tmp_path / "churn.csv", index=False)
    frame.to_parquet(tmp_path / "churn.parquet")
    from_csv = datasets.read(tmp_path / "churn.csv", target="churned", drop=["customer_id"])
    from_parquet = datasets.read(tmp_path / "churn.parquet", target="churned", drop=["customer_id"])
    from_frame = datasets.from_frame(frame, "churned", drop=["customer_id"])
    assert_same_data(from_csv, from_parquet)
    assert_same_data(from_csv, from_frame)


def test_npy_npz_and_arrays_are_standardised_with_the_training_rows(tmp_path):
    rng = np.random.default_rng(3)
    X = rng.normal(5.0, 3.0, size=(80, 4))
    y = X @ np.array([1.0, -2.0, 0.5, 0.0]) + rng.normal(0.0, 0.1, 80)
    np.save(tmp_path / "xy.npy", np.column_stack([X[:, :2], y, X[:, 2:]]))  # the target in the middle
    np.savez(tmp_path / "xy.npz", X=X, y=y)
    from_npy = datasets.read(tmp_path / "xy.npy", target=2)
    from_npz = datasets.read(tmp_path / "xy.npz")
    from_arrays = datasets.from_arrays(X, y)
    assert from_npz.task == "regression" and from_npz.output == "identity"
    assert_same_data(from_npy, from_npz)
    assert_same_data(from_npz, from_arrays)
    train, test = train_test_split(np.arange(80), test_size=0.25, random_state=0)
    mean, deviation = X[train].mean(axis=0), X[train].std(axis=0)
    np.testing.assert_allclose(from_npz.X_test, (X[test] - mean) / deviation, rtol=1e-12)
    np.testing.assert_allclose(from_npz.y_test, (y[test] - y[train].mean()) / y[train].std(), rtol=1e-12)


def test_a_scikit_learn_generator_with_its_own_options():
    from sklearn.datasets import make_moons

    source = datasets.Source("moons", loader="make_moons", options={"n_samples": 200, "noise": 0.1,
                                                                   "random_state": 4})
    data = datasets.make(source)
    assert datasets.make(source) is data  # cached
    X, y = make_moons(n_samples=200, noise=0.1, random_state=4)
    assert_same_data(data, datasets.from_arrays(X, y, name="moons"))
    with pytest.raises(DatasetError, match="moons \\(make_moons\\): .*n_samples"):
        datasets.make(datasets.Source("moons", loader="make_moons", options={"n_samples": -3}))


def test_a_generator_given_no_seed_is_seeded_with_random_state_0_and_the_seed_is_part_of_its_source():
    from sklearn.datasets import make_classification

    options = {"n_samples": 120, "n_features": 6, "n_informative": 3, "n_classes": 3}
    unseeded = datasets.Source("blobs", loader="make_classification", options=options)
    assert dict(unseeded.options)["random_state"] == 0
    assert unseeded == datasets.Source("blobs", loader="make_classification", options={**options, "random_state": 0})
    X, y = make_classification(**options, random_state=0)
    assert_same_data(datasets.make(unseeded), datasets.from_arrays(X, y, name="blobs"))
    reseeded = datasets.Source("blobs", loader="make_classification", options={**options, "random_state": 5})
    other = datasets.make(reseeded)
    assert other.content_hash != datasets.make(unseeded).content_hash
    # a loader that is not a generator takes no random_state
    assert "random_state" not in dict(datasets.Source("iris", loader="load_iris").options)


def test_a_generator_makes_its_own_task_whatever_its_labels_look_like():
    # 150 whole-number labels would be taken for a regression target by inference: make_blobs makes classes
    data = datasets.make(datasets.Source("blobs", loader="make_blobs",
                                         options={"n_samples": 3000, "centers": 150, "random_state": 0}))
    assert data.task == "classification" and data.n_classes == 150


def test_a_fetcher_loads_offline_or_says_where_the_data_is_missing(tmp_path):
    source = datasets.Source("housing", loader="fetch_california_housing", options={"data_home": str(tmp_path)})
    with pytest.raises(DatasetError, match=f"not in scikit-learn's data home .*{tmp_path.name}.*offline"):
        datasets.make(source)
    assert list(tmp_path.iterdir()) == []  # nothing was downloaded


def test_mnist1d_is_the_standard_split_generated_locally_and_leaves_the_global_generators_alone():
    pytest.importorskip("mnist1d")
    from mnist1d.data import get_dataset_args, make_dataset

    np.random.seed(123)
    random.seed(123)
    expected_numpy, expected_python = np.random.random(), random.random()
    np.random.seed(123)
    random.seed(123)
    data = datasets.load("mnist1d")
    assert (np.random.random(), random.random()) == (expected_numpy, expected_python)
    assert data.X_train.shape == (4000, 40) and data.X_test.shape == (1000, 40) and data.n_classes == 10
    reference = make_dataset(get_dataset_args())
    np.testing.assert_array_equal(data.y_train, reference["y"])
    np.testing.assert_array_equal(data.y_test, reference["y_test"])
    mean, deviation = reference["x"].mean(axis=0), reference["x"].std(axis=0)
    np.testing.assert_allclose(data.X_test, (reference["x_test"] - mean) / deviation, rtol=1e-10, atol=1e-12)


def test_mnist1d_is_made_once_for_the_data_sets_of_the_same_options(monkeypatch):
    pytest.importorskip("mnist1d", reason="MNIST-1D is generated by the mnist1d package")
    import mnist1d.data

    made, real = [], mnist1d.data.make_dataset
    monkeypatch.setattr(mnist1d.data, "make_dataset", lambda arguments: made.append(1) or real(arguments))
    datasets._made_mnist1d.cache_clear()
    first = datasets.make(datasets.Source("mlp_problem", loader="mnist1d"))
    second = datasets.make(datasets.Source("cnn_problem", loader="mnist1d"))
    assert len(made) == 1 and first.name != second.name
    # the first set's standardising left the arrays it was made from as they were
    np.testing.assert_array_equal(first.X_train, second.X_train)
    assert first.content_hash == second.content_hash == datasets.load("mnist1d").content_hash
    fewer = datasets.make(datasets.Source("fewer", loader="mnist1d", options={"num_samples": 500}))
    assert len(made) == 2 and fewer.X_train.shape == (400, 40)


def test_a_generated_set_of_a_million_rows():
    data = datasets.synthetic("regression", 1_000_000, 2)
    assert data.X_train.shape == (750_000, 2) and data.X_test.shape == (250_000, 2)
    assert datasets.check_name("synthetic-classification-1000000x100") == ("classification", 100, 2)


@pytest.mark.parametrize("name", ["iris", "diabetes"])
def test_the_test_metric_is_scikit_learns_accuracy_or_r2(name):
    from sklearn.metrics import accuracy_score, r2_score

    data = datasets.load(name)
    outputs = np.random.default_rng(0).normal(size=(len(data.y_test), data.n_outputs)) + data.Y_test
    if data.task == "classification":
        assert data.metric_name == "accuracy"
        assert data.test_metric(outputs) == accuracy_score(data.y_test, outputs.argmax(axis=1))
    else:
        assert data.metric_name == "r2"
        assert data.test_metric(outputs) == pytest.approx(r2_score(data.y_test, outputs[:, 0]), rel=1e-12)


def test_one_check_takes_a_name_a_source_or_a_data_set(tmp_path):
    table().to_csv(tmp_path / "churn.csv", index=False)
    source = datasets.Source("churn", path=str(tmp_path / "churn.csv"), target="churned")
    made = datasets.make(source)
    assert datasets.check(source) == datasets.check(made) == ("classification", made.n_features, 2)
    assert datasets.check("iris") == datasets.check_name("iris") == ("classification", 4, 3)
    with pytest.raises(datasets.DatasetError, match="no such file"):
        datasets.check(datasets.Source("gone", path=str(tmp_path / "gone.csv"), target="y"))


# -- task, split and hash ----------------------------------------------------------------------

@pytest.mark.parametrize("labels, task", [
    (["a", "b"] * 30, "classification"),
    ([True, False] * 30, "classification"),
    ([0, 1, 2] * 20, "classification"),
    ([0.0, 1.0] * 30, "classification"),
    (np.arange(60) * 7, "regression"),  # more whole numbers than MAX_INFERRED_CLASSES would be classes
    (np.linspace(0.0, 1.0, 60), "regression"),
])
def test_the_task_is_inferred_from_the_target_as_stated_in_the_docs(labels, task, monkeypatch):
    monkeypatch.setattr(datasets, "MAX_INFERRED_CLASSES", 50)
    frame = pd.DataFrame({"x": np.arange(60.0) % 11, "label": labels})
    assert datasets.from_frame(frame, "label").task == task


def test_a_stated_task_overrides_the_inferred_one():
    frame = pd.DataFrame({"x": np.arange(60.0) % 11, "rooms": [1, 2, 3] * 20})
    assert datasets.from_frame(frame, "rooms").task == "classification"
    regression = datasets.from_frame(frame, "rooms", task="regression")
    assert regression.task == "regression" and regression.y_train.dtype == np.float64


def test_the_split_is_fixed_by_its_seed_and_size_and_the_hash_follows_the_data(tmp_path):
    frame = table()
    first = datasets.from_frame(frame, "churned")
    assert_same_data(first, datasets.from_frame(frame.copy(), "churned"))
    assert datasets.from_frame(frame, "churned", split_seed=1).content_hash != first.content_hash
    smaller = datasets.from_frame(frame, "churned", test_size=0.5)
    assert smaller.X_test.shape[0] == 60 and smaller.content_hash != first.content_hash
    changed = frame.copy()
    changed.loc[5, "age"] += 1e-9
    assert datasets.from_frame(changed, "churned").content_hash != first.content_hash
    assert len(first.content_hash) == 64


def test_an_edited_file_is_read_again(tmp_path):
    path = tmp_path / "t.csv"
    table().to_csv(path, index=False)
    before = datasets.read(path, target="churned")
    edited = table()
    edited.loc[0, "age"] = 99.0
    edited.to_csv(path, index=False)
    assert datasets.read(path, target="churned").content_hash != before.content_hash


def test_a_registered_data_set_is_loaded_by_name_and_a_built_in_name_is_refused():
    data = datasets.from_frame(table(), "churned", name="registered-churn")
    datasets.register(data)
    assert datasets.load("registered-churn") is data
    with pytest.raises(DatasetError, match="'digits': the name clashes with fastgd's own"):
        datasets.register(datasets.from_frame(table(), "churned", name="digits"))
    with pytest.raises(DatasetError, match="clashes"):
        datasets.register(datasets.Source("synthetic-regression-100x2", path="x.csv", target="y"))


# -- bad input ---------------------------------------------------------------------------------

def write_csv(path, change):
    frame = table(40)
    change(frame)
    frame.to_csv(path, index=False)
    return path


def with_nan(frame):
    frame.loc[6, "age"] = np.nan


def with_inf(frame):
    frame.loc[6, "age"] = np.inf


def with_missing_category(frame):
    frame.loc[6, "city"] = None


def with_one_class(frame):
    frame["churned"] = "yes"


def with_a_lonely_class(frame):
    frame.loc[6, "churned"] = "maybe"


def with_dates(frame):
    frame["city"] = pd.Timestamp("2024-01-01")


BAD_TABLES = [
    (with_nan, "t.csv: column 'age' holds NaN or infinity (1 row, the first is row 7)"),
    (with_inf, "column 'age' holds NaN or infinity"),
    (with_missing_category, "column 'city' has missing values (1 row, the first is row 7)"),
    (with_one_class, "the target column 'churned' has one class ('yes')"),
    (with_a_lonely_class, "class 'maybe' has 1 row; a stratified split needs at least 2"),
]


@pytest.mark.parametrize("change, message", BAD_TABLES, ids=[change.__name__ for change, _ in BAD_TABLES])
def test_a_bad_table_is_refused_in_one_line_naming_the_file(tmp_path, change, message):
    path = write_csv(tmp_path / "t.csv", change)
    with pytest.raises(DatasetError) as error:
        datasets.read(path, target="churned")
    assert message in str(error.value) and str(path) in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("frame, target, message", [
    (table().assign(when=pd.Timestamp("2024-01-01")), "churned", "column 'when' holds dates or times"),
    (table().assign(city=["a", 1] * 60), "churned", "column 'city' holds values of mixed or unsupported types"),
    (table().assign(churned=[1.0, "x"] * 60), "churned", "mixes values of different types"),
    (table().assign(age=1.0), "age", "the target is constant"),
    (table().assign(churned=np.nan), "churned", "target column 'churned' has missing values"),
    (table()[["churned"]], "churned", "no feature columns besides the target"),
    (table(4).assign(churned=["a", "a", "b", "b"]), "churned", "2 classes do not fit in a test part of 1 rows"),
    (table(), "churn", "no target column 'churn' (it has 'age', 'visits'"),
])
def test_a_bad_frame_is_refused_in_one_line(frame, target, message):
    with pytest.raises(DatasetError, match=None) as error:
        datasets.from_frame(frame, target, task="regression" if target == "age" else None)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("make_file, source, message", [
    (None, dict(path="missing.csv", target="y"), "missing.csv: no such file"),
    (lambda p: p.write_text(""), dict(path="empty.csv", target="y"), "empty.csv: cannot be read as a CSV table"),
    (lambda p: p.write_bytes(b"\xff\xfe\x00a,b\n"), dict(path="latin.csv", target="a"), "not utf-8 text"),
    (lambda p: p.write_text("not parquet"), dict(path="fake.parquet", target="y"), "cannot be read as a PARQUET"),
    (lambda p: np.save(p, np.ones((5, 3))), dict(path="a.npy", target=7), "no column 7: the array has 3 columns"),
    (lambda p: np.save(p, np.ones(5)), dict(path="v.npy", target=0), "a 2-D array with the target as one column"),
    (lambda p: np.savez(p, X=np.ones((5, 2))), dict(path="x.npz"), "holds arrays X and y; it has ['X']"),
    (lambda p: np.savez(p, X=np.array([[np.inf, 1.0]] * 8), y=np.arange(8.0)), dict(path="inf.npz"),
     "X holds NaN or infinity (column 0, 8 rows, the first is row 1)"),
    (lambda p: p.mkdir(), dict(path="folder.csv", target="y"), "is a directory"),
    (lambda p: p.write_text("a,b\n1,2\n"), dict(path="e.csv", target="a", options={"encoding": "klingon"}),
     "e.csv: cannot be read as a CSV table: unknown encoding: klingon"),
])
def test_a_bad_file_is_refused_in_one_line_naming_it(tmp_path, make_file, source, message):
    path = tmp_path / source["path"]
    if make_file is not None:
        make_file(path)
    with pytest.raises(DatasetError) as error:
        datasets.make(datasets.Source("bad", **dict(source, path=str(path))))
    assert message in str(error.value) and source["path"] in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("settings, message", [
    (dict(path="t.txt", target="y"), "t.txt: not a data file fastgd reads"),
    (dict(path="t.csv"), "t.csv: name the target column"),
    (dict(path="t.npy", target="y"), "needs the target's column index"),
    (dict(path="t.npz", target="y"), "an .npz file holds arrays X and y; it takes no target"),
    (dict(path="t.csv", target="y", options={"colour": "red"}), "takes no option 'colour'"),
    (dict(path="t.csv", target="y", task="ranking"), "task must be 'classification' or 'regression'"),
    (dict(path="t.csv", target="y", test_size=1.5), "test_size must be a number between 0 and 1"),
    (dict(path="t.csv", target="y", split_seed=-1), "split_seed must be an integer from 0"),
    (dict(loader="load_everything"), "unknown loader 'load_everything'"),
    (dict(loader="make_moons", task="regression"), "make_moons makes a classification set, not regression"),
    (dict(loader="mnist1d", test_size=0.5), "MNIST-1D comes with its own split"),
    (dict(loader="fetch_covtype", options={"download_if_missing": True}), "fastgd loads offline"),
    (dict(path="t.csv", loader="make_moons", target="y"), "give a path or a loader (exactly one)"),
    (dict(loader="make_moons", options={"random_state": -1}), "random_state must be an integer from 0"),
    (dict(loader="make_moons", options={"random_state": 0.5}), "the same wherever it is made, got 0.5"),
])
def test_a_source_that_cannot_work_is_refused_when_declared(settings, message):
    with pytest.raises(DatasetError, match=None) as error:
        datasets.Source("mine", **settings)
    assert message in str(error.value)


# -- configurations and the command line -------------------------------------------------------

SWEEP = """
name = "own"
rules = ["sgd", "adam"]
learning_rates = [0.1]
seeds = [0]
epochs = 3

[model]
hidden_layer_sizes = [8]
"""


@pytest.fixture()
def workdir(tmp_path):
    """A folder with a user's table, a sweep configuration, and a store the refused commands must leave alone."""
    frame = table()
    frame.to_csv(tmp_path / "churn.csv", index=False)
    for name, change in [("nan.csv", with_nan), ("inf.csv", with_inf), ("missing-category.csv", with_missing_category),
                         ("one-class.csv", with_one_class)]:
        write_csv(tmp_path / name, change)
    table(40).assign(joined=pd.Timestamp("2024-01-01")).to_parquet(tmp_path / "dates.parquet")
    (tmp_path / "sweep.toml").write_text(SWEEP + '\n[targets]\niris = 0.5\n' + '\n[datasets.iris]\n')
    (tmp_path / "clash.toml").write_text(SWEEP + '\n[datasets.iris]\npath = "churn.csv"\ntarget = "churned"\n'
                                         '\n[targets]\niris = 0.5\n')
    (tmp_path / "typo.toml").write_text(SWEEP + '\n[datasets.churn]\npath = "churn.csv"\ntarget = "churnd"\n'
                                        '\n[targets]\nchurn = 0.5\n')
    code, _, err = run_command(["sweep", "sweep.toml", "--store", "r.db", "--jobs", "1", "--quiet"], tmp_path)
    assert code == 0, err
    return tmp_path


def run_command(arguments, cwd):
    from cli_harness import run_command as run

    return run(arguments, cwd)


def test_a_sweep_over_a_users_csv_from_the_command_line(workdir):
    from fastgd import MLP, optim, sweep
    from fastgd.training import Training

    code, out, err = run_command(["sweep", "sweep.toml", "--dataset", "churn.csv", "--target", "churned",
                                  "--target-loss", "0.4", "--store", "r.db", "--jobs", "2", "--quiet"], workdir)
    assert code == 0, err
    assert "2 runs, 0 already stored, 2 new (0 diverged, 0 failed)" in out
    runs = sweep.load_runs(workdir / "r.db")
    mine = runs[runs["dataset"] == "churn.csv"].set_index("rule")
    assert list(runs["dataset"]).count("iris") == 2 and set(mine["target_loss"]) == {0.4}
    # the worker processes trained and tested on what datasets.read gives here
    data = datasets.read(workdir / "churn.csv", target="churned")
    net = MLP([data.n_features, 8, data.n_outputs], "relu", data.output, 1e-4)
    optimizer = optim.Adam(net.init(random_state=0), lr=0.1)
    history = Training(net, optimizer, data.X_train, data.Y_train, 32, seed=0).run(3)
    accuracy = np.mean(net.predict(optimizer.params, data.X_test).argmax(axis=1) == data.y_test)
    assert mine.loc["adam", "final_loss"] == history.loss[-1]
    assert mine.loc["adam", "test_metric_name"] == "accuracy" and mine.loc["adam", "test_metric"] == accuracy


def test_an_edited_file_behind_the_same_name_makes_new_runs(workdir):
    """The data set's content hash is part of a run's identity: a resumed sweep redoes what changed data would."""
    from fastgd import sweep
    from fastgd.sweep.metrics import mixed_settings

    arguments = ["sweep", "sweep.toml", "--dataset", "churn.csv", "--target", "churned", "--target-loss", "0.4",
                 "--store", "r.db", "--jobs", "1", "--quiet"]
    assert run_command(arguments, workdir)[0] == 0
    code, out, err = run_command(arguments, workdir)
    assert code == 0 and "2 runs, 2 already stored, 0 new" in out, out + err
    table(seed=1).to_csv(workdir / "churn.csv", index=False)  # same name, same columns, other rows
    code, out, err = run_command(arguments, workdir)
    assert code == 0 and "2 runs, 0 already stored, 2 new" in out, out + err
    runs = sweep.load_runs(workdir / "r.db")
    mine = runs[runs["dataset"] == "churn.csv"]
    assert len(mine) == 4 and mine["data_hash"].nunique() == 2
    assert set(mine["data_hash"]) == {datasets.read(workdir / "churn.csv", target="churned").content_hash,
                                      datasets.from_frame(table(), "churned").content_hash}
    [line] = mixed_settings(mine)
    assert line.startswith("churn.csv: the store mixes runs of different settings (its content in 2 versions")


def test_a_worker_whose_file_differs_from_the_sweeps_fails_its_runs_rather_than_train_on_it(workdir):
    from fastgd import sweep
    from fastgd.sweep import config as sweep_config
    from fastgd.sweep.runner import execute_chunk

    configuration = sweep_config.load_config(workdir / "sweep.toml").on_dataset(
        {"name": "churn.csv", "path": str(workdir / "churn.csv"), "target": "churned"}, target_loss=0.4)
    specs = [spec for spec in sweep.runs(configuration) if spec.dataset == "churn.csv"]
    table(seed=2).to_csv(workdir / "churn.csv", index=False)  # changed after the sweep planned its runs
    results = execute_chunk(specs, sources=configuration.sources)
    assert [result["status"] for result in results] == ["failed"] * len(specs)
    assert all("its file differs between this worker and the sweep" in result["error"] for result in results)


def test_train_and_landscape_take_a_file_and_its_target(workdir):
    code, out, err = run_command(["train", "--dataset", "churn.csv", "--target", "churned", "--epochs", "2",
                                  "--hidden", "8", "4"], workdir)
    assert code == 0, err
    assert out.startswith("churn.csv: 90 training samples; MLP(layer_sizes=[9, 8, 4, 2]") and "test accuracy" in out
    code, out, err = run_command(["train", "--dataset", "churn.csv", "--target", "age", "--epochs", "1"], workdir)
    assert code == 0 and "test R²" in out, err
    code, out, err = run_command(["landscape", "--dataset", "churn.csv", "--target", "churned", "--epochs", "1",
                                  "--out", "land"], workdir)
    assert code == 0 and (workdir / "land" / "landscape.csv").is_file(), err


def test_a_configuration_defines_data_sets_and_their_networks(tmp_path):
    from fastgd import sweep

    (tmp_path / "data").mkdir()
    table().to_csv(tmp_path / "data" / "churn.csv", index=False)
    (tmp_path / "c.toml").write_text(SWEEP + """
[datasets.churn]
path = "data/churn.csv"
target = "churned"
test_size = 0.5
options = {drop = ["customer_id"], categorical = ["visits"]}
model = {hidden_layer_sizes = [16, 16], activation = "tanh"}

[datasets.moons]
loader = "make_moons"
options = {n_samples = 100, random_state = 0}

[datasets.iris]

[targets]
churn = 0.3
moons = 0.3
iris = 0.3
""")
    config = sweep.load_config(tmp_path / "c.toml")  # read from elsewhere: the path is the configuration's
    assert config.datasets == ("churn", "moons", "iris")
    networks = {spec.dataset: (spec.hidden_layer_sizes, spec.activation) for spec in sweep.runs(config)}
    assert networks == {"churn": ((16, 16), "tanh"), "moons": ((8,), "relu"), "iris": ((8,), "relu")}
    churn = datasets.make(config.sources["churn"])
    (X_train, _), _, _ = prepared_by_hand(table(), "churned", ["age"], ["visits", "city", "member"], test_size=0.5)
    assert churn.X_test.shape == (60, X_train.shape[1])  # visits one-hot encoded, customer_id left out
    listed = sweep.parse(dict(__import__("tomllib").loads(SWEEP), datasets=["iris"], targets={"iris": 0.3}))
    assert [s.run_id for s in sweep.runs(listed)] == [s.run_id for s in sweep.runs(config) if s.dataset == "iris"]


def test_dataset_on_the_command_line_keeps_the_configurations_network_for_it_and_is_parsed_once(tmp_path,
                                                                                               monkeypatch):
    from fastgd import cli, sweep
    from fastgd.sweep import config as sweep_config

    (tmp_path / "c.toml").write_text(SWEEP + """
[datasets.iris]
model = {hidden_layer_sizes = [16, 16], activation = "tanh"}

[datasets.wine]

[targets]
iris = 0.3
wine = 0.2
""")
    parsed, parse = [], sweep_config.parse
    monkeypatch.setattr(sweep_config, "parse", lambda raw, base_dir=None: parsed.append(raw) or parse(raw, base_dir))
    for name, network, target in [("iris", ((16, 16), "tanh"), 0.3), ("wine", ((8,), "relu"), 0.2)]:
        parsed.clear()
        arguments = cli.build_parser().parse_args(["sweep", str(tmp_path / "c.toml"), "--dataset", name,
                                                   "--store", "r.db"])
        arguments.plugins = []
        config = cli._sweep_config(arguments)
        assert len(parsed) == 1 and config.datasets == (name,) and config.targets == {name: target}
        assert {(spec.hidden_layer_sizes, spec.activation) for spec in sweep.runs(config)} == {network}


@pytest.mark.parametrize("arguments, message", [
    (["train", "--dataset", "missing.csv", "--target", "y"], "--dataset: missing.csv: no such file"),
    (["train", "--dataset", "churn.csv", "--target", "churnd"], "churn.csv: no target column 'churnd' (it has 'age'"),
    (["train", "--dataset", "churn.csv"], "churn.csv: name the target column"),
    (["train", "--dataset", "nan.csv", "--target", "churned"], "nan.csv: column 'age' holds NaN or infinity"),
    (["train", "--dataset", "inf.csv", "--target", "churned"], "inf.csv: column 'age' holds NaN or infinity"),
    (["train", "--dataset", "missing-category.csv", "--target", "churned"], "column 'city' has missing values"),
    (["train", "--dataset", "dates.parquet", "--target", "churned"], "column 'joined' holds dates or times"),
    (["train", "--dataset", "one-class.csv", "--target", "churned"], "has one class ('yes')"),
    (["train", "--dataset", "digits", "--target", "churned"], "--target is for a data file; 'digits' is a data set"),
    (["landscape", "--dataset", "nan.csv", "--target", "churned", "--out", "land"], "nan.csv: column 'age' holds NaN"),
    (["landscape", "--dataset", "churn.csv", "--target", "nope", "--out", "land"], "no target column 'nope'"),
    (["sweep", "sweep.toml", "--dataset", "one-class.csv", "--target", "churned", "--store", "r.db"],
     "one-class.csv: the target column 'churned' has one class"),
    (["sweep", "sweep.toml", "--dataset", "missing.csv", "--target", "churned", "--store", "r.db"], "no such file"),
    (["sweep", "clash.toml", "--store", "r.db"], "[datasets.iris]: the name 'iris' clashes with a bundled data set"),
    (["sweep", "typo.toml", "--store", "r.db"], "[datasets.churn] " ),
    (["sweep", "sweep.toml", "--target-loss", "0.1", "--store", "r.db"], "--target-loss is for --dataset"),
    (["compare", "clash.toml", "--out", "report"], "clashes with a bundled data set"),
    (["compare", "--dataset", "inf.csv", "--target", "churned", "--out", "report"], "inf.csv: column 'age' holds"),
    (["compare", "sweep.toml", "--preset", "quick", "--out", "report"], "give a CONFIG file or --preset, not both"),
])
def test_bad_data_is_refused_in_one_line_before_anything_trains_or_changes(workdir, arguments, message):
    from cli_harness import assert_refused

    line = assert_refused(arguments, workdir, message)
    if "typo" in arguments:
        assert "churn.csv: no target column 'churnd'" in line


# the report's drawing over a sweep whose epochs are test_a_sweep_over_a_users_csv_from_the_command_line's
@pytest.mark.above_kernels
def test_compare_reports_on_a_configuration_over_a_users_file(workdir):
    from fastgd import sweep

    code, out, err = run_command(["compare", "sweep.toml", "--dataset", "churn.csv", "--target", "churned",
                                  "--target-loss", "0.69", "--out", "report", "--skip-throughput", "--jobs", "1"],
                                 workdir)
    assert code == 0, err
    runs = sweep.load_runs(workdir / "report" / "sweep.db")
    assert set(runs["dataset"]) == {"churn.csv"} and set(runs["rule"]) == {"sgd", "adam"}
    assert "churn.csv" in (workdir / "report" / "index.html").read_text()


def _rows(X):
    return {row.tobytes() for row in np.asarray(X)}


@pytest.mark.parametrize("name", ["iris", "diabetes"])
def test_the_validation_split_is_a_seeded_stratified_part_of_the_training_rows(name):
    data = datasets.load(name)
    split = data.validation_split(0.2, seed=0)
    n_train = data.X_train.shape[0]
    assert split.X_test.shape[0] == math.ceil(0.2 * n_train)
    assert split.X_train.shape[0] + split.X_test.shape[0] == n_train
    # inside the training rows, disjoint from the test rows and from each other; the test part is not used
    assert _rows(split.X_train) | _rows(split.X_test) == _rows(data.X_train)
    assert not _rows(split.X_test) & _rows(data.X_test) and not _rows(split.X_train) & _rows(split.X_test)
    # each row keeps its target
    targets = {row.tobytes(): y for row, y in zip(data.X_train, data.y_train)}
    assert all(targets[row.tobytes()] == y for row, y in zip(split.X_test, split.y_test))
    assert (split.task, split.n_classes, split.n_features) == (data.task, data.n_classes, data.n_features)
    if data.task == "classification":  # stratified: every class in proportion, to within a row
        expected = np.bincount(data.y_train) * split.X_test.shape[0] / n_train
        assert np.all(np.abs(np.bincount(split.y_test, minlength=data.n_classes) - expected) <= 1)
    # made once per data set object; made again from the same data, the same rows
    assert data.validation_split(0.2, seed=0) is split
    again, other = dataclasses.replace(data).validation_split(0.2, seed=0), data.validation_split(0.2, seed=1)
    assert again is not split
    assert np.array_equal(again.X_test, split.X_test) and again.content_hash == split.content_hash
    assert not np.array_equal(other.X_test, split.X_test) and other.content_hash != split.content_hash
    assert split.content_hash != data.content_hash
    assert not split.X_train.flags.writeable and not split.y_test.flags.writeable


@pytest.mark.parametrize("fraction, message", [(0.0, "between 0 and 1"), (1.0, "between 0 and 1"),
                                               (True, "between 0 and 1"), ("0.2", "between 0 and 1"),
                                               (0.01, "classes do not fit")])
def test_a_validation_split_that_cannot_be_made_is_refused_in_one_line(fraction, message):
    with pytest.raises(DatasetError, match=message) as error:
        datasets.load("iris").validation_split(fraction)
    assert "validation split of data set 'iris'" in str(error.value) and "\n" not in str(error.value)
