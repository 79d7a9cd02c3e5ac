"""Data files that lie about what they hold: refused in one line before anything trains, or read correctly.

Each case is a file a user could bring (a repeated column name, numbers near
1e300, a numeric column with one "?", a link to /dev/zero, a truncated
.csv.gz); the command line must refuse it through ``cli_harness.assert_refused``
(exit status 2, one line, nothing written), and ``datasets.read`` with a
:class:`~fastgd.datasets.DatasetError` naming the column or the position.
"""

import bz2
import gzip
import io
import lzma
import os
import sys
import zipfile

import numpy as np
import pytest
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from cli_harness import assert_refused, run_command
from fastgd import cli, datasets, machine
from fastgd.datasets import DatasetError, _where_undecodable

pd = pytest.importorskip("pandas")

N_ROWS = 60


def frame(**columns):
    """A small classification table: two informative numeric columns, the given ones, and a label."""
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"a": rng.normal(size=N_ROWS), "b": rng.normal(size=N_ROWS)})
    for name, values in columns.items():
        table[name] = values
    table["label"] = np.arange(N_ROWS) % 3
    return table


def train_refused(root, name, message, *options):
    assert_refused(["train", "--dataset", name, "--target", "label", "--epochs", "1", *options], root, message)


# -- 1. a repeated column name ----------------------------------------------------------------

def test_a_repeated_column_name_is_refused_naming_it(tmp_path):
    rng = np.random.default_rng(1)
    # what pandas would read as a regression target "label" (random floats) and a feature "label.1" (the labels)
    text = "label,a,label\n" + "".join(f"{rng.random():.6f},{rng.random():.6f},{row % 3}\n" for row in range(N_ROWS))
    (tmp_path / "twice.csv").write_text(text)
    (tmp_path / "twice.csv.gz").write_bytes(gzip.compress(text.encode()))
    for name in ("twice.csv", "twice.csv.gz"):
        train_refused(tmp_path, name, "the column name 'label' is used more than once (columns 1, 3)")
        with pytest.raises(DatasetError, match="'label' is used more than once"):
            datasets.read(tmp_path / name, target="label")


def test_a_file_read_with_the_wrong_separator_says_which_separator_its_columns_have(tmp_path):
    text = "a;b;label\n" + "".join(f"{row};{row * 2};{row % 2}\n" for row in range(N_ROWS))
    (tmp_path / "semicolons.csv").write_text(text)
    train_refused(tmp_path, "semicolons.csv", "no target column 'label' (it has 'a;b;label'); its columns look "
                  "separated by ';': give the separator (options.sep = ';')")
    data = datasets.read(tmp_path / "semicolons.csv", target="label", sep=";")
    assert data.n_features == 2


def test_a_column_named_like_pandas_renames_a_repeat_is_read_as_it_is(tmp_path):
    table = frame(**{"label.1": np.linspace(0.0, 1.0, N_ROWS)})
    table.to_csv(tmp_path / "dotted.csv", index=False)
    data = datasets.read(tmp_path / "dotted.csv", target="label")
    assert data.task == "classification" and data.n_features == 3


# -- 2. values whose standardisation overflows ------------------------------------------------

def test_a_feature_near_1e300_is_refused_naming_it_beside_text_and_alone(tmp_path):
    huge = np.random.default_rng(2).random(N_ROWS) * 1e300
    # beside a text column the ColumnTransformer scales it (scikit-learn would leave it unscaled: its rounding
    # bound overflows, so it reads as constant); alone, fastgd's table kernels do
    frame(huge=huge, colour=np.array(["red", "blue"])[np.arange(N_ROWS) % 2]).to_csv(tmp_path / "text.csv",
                                                                                      index=False)
    frame(huge=huge).to_csv(tmp_path / "numbers.csv", index=False)
    for name in ("text.csv", "numbers.csv"):
        train_refused(tmp_path, name, "column 'huge' holds values too large to standardise")
    with pytest.raises(DatasetError, match=r"^data set 'arrays': column 2 of X holds values too large"):
        datasets.from_arrays(frame(huge=huge).drop(columns="label").to_numpy(), np.arange(N_ROWS) % 3)


def test_a_regression_target_near_1e300_is_refused_not_scaled_to_zeros(tmp_path):
    table = frame().drop(columns="label")
    table["price"] = np.random.default_rng(3).random(N_ROWS) * 1e300 + 1e300
    table.to_csv(tmp_path / "prices.csv", index=False)
    assert_refused(["train", "--dataset", "prices.csv", "--target", "price", "--task", "regression"], tmp_path,
                   "the target holds values too large to standardise")


def test_large_values_that_standardise_are_scaled_as_scikit_learn_scales_them():
    large = np.random.default_rng(4).normal(size=N_ROWS) * 1e150  # its variance, 1e300, still fits
    table = frame(large=large, colour=np.array(["red", "blue"])[np.arange(N_ROWS) % 2])
    data = datasets.from_frame(table, "label")
    train = train_test_split(np.arange(N_ROWS), test_size=0.25, random_state=0, stratify=table["label"])[0]
    expected = StandardScaler().fit_transform(table[["a", "b", "large"]].iloc[train])
    np.testing.assert_allclose(data.X_train[:, :3], expected, rtol=1e-10)


# -- 3. text that is really numbers, or identifiers -------------------------------------------

def question_mark_column():
    values = np.round(np.random.default_rng(5).random(N_ROWS), 3).astype(str).astype(object)
    values[6] = "?"
    return values


TEXT_CASES = [
    ("question.csv", question_mark_column(), "column 'c' holds numbers but for 1 value ('?'; 1 row, the first is "
                                             "row 7)"),
    ("thousands.csv", [f"{value:,}" for value in np.random.default_rng(6).integers(0, 5000, N_ROWS)],
     "column 'c' holds numbers written with thousands separators"),
    ("names.csv", [f"customer {row}" for row in range(N_ROWS)], "column 'c' holds text with 60 distinct values in "
                                                               "60 rows"),
]


@pytest.mark.parametrize("name, values, message", TEXT_CASES, ids=[case[0] for case in TEXT_CASES])
def test_a_text_column_that_is_numbers_or_an_identifier_is_refused_not_one_hot_encoded(tmp_path, name, values,
                                                                                        message):
    frame(c=values).to_csv(tmp_path / name, index=False)
    train_refused(tmp_path, name, message)
    # named in categorical, it is one-hot encoded: a column per value seen in the training rows
    data = datasets.read(tmp_path / name, target="label", categorical=["c"])
    table = pd.read_csv(tmp_path / name)
    assert 2 < data.n_features <= 2 + table["c"].nunique()
    assert set(np.unique(data.X_train[:, 2:])) == {0.0, 1.0}


def test_the_command_line_encodes_or_drops_a_refused_column_when_told_to(tmp_path):
    frame(c=question_mark_column()).to_csv(tmp_path / "question.csv", index=False)
    width = datasets.read(tmp_path / "question.csv", target="label", categorical=["c"]).n_features
    for options, n_features in ((["--categorical", "c"], width), (["--drop", "c"], 2)):
        code, out, err = run_command(["train", "--dataset", "question.csv", "--target", "label", "--epochs", "1",
                                      *options], tmp_path)
        assert code == 0, err
        assert f"layer_sizes=[{n_features}, 32, 3]" in out
    # a sweep on the file takes them into its data set's definition
    arguments = cli.build_parser().parse_args(["sweep", "--preset", "quick", "--store", "r.db", "--dataset",
                                               str(tmp_path / "question.csv"), "--target", "label", "--drop", "c"])
    arguments.plugins = []
    config = cli._sweep_config(arguments)
    assert config.sources["question.csv"].options == (("drop", ("c",)),)


def test_a_text_column_of_few_categories_is_still_one_hot_encoded(tmp_path):
    colours = np.array(["red", "green", "blue", "grey"])[np.arange(N_ROWS) % 4]
    frame(c=colours).to_csv(tmp_path / "colours.csv", index=False)
    data = datasets.read(tmp_path / "colours.csv", target="label")
    assert data.n_features == 2 + 4
    # a pandas categorical is categories by its type, whatever its values look like
    sizes = pd.Categorical(np.array(["1", "2", "3", "?"])[np.arange(N_ROWS) % 4])
    assert datasets.from_frame(frame(c=sizes), "label").n_features == 2 + 4


# -- encoding errors name the file's own position ---------------------------------------------

def test_an_encoding_error_names_the_first_bad_byte_and_its_line(tmp_path):
    text = frame().to_csv(index=False).encode()
    position = 78
    broken = text[:position] + b"\xff" + text[position + 1:]
    (tmp_path / "latin.csv").write_bytes(broken)
    (tmp_path / "latin.csv.gz").write_bytes(gzip.compress(broken))
    line = broken[:position].count(b"\n") + 1
    for name in ("latin.csv", "latin.csv.gz"):
        train_refused(tmp_path, name, f"not utf-8 text at byte offset {position} (0-based), line {line}; give "
                                      "options.encoding")


def test_an_encoding_error_deep_in_a_large_file_is_found_across_blocks(tmp_path):
    rows = "".join(f"{row},caf\u00e9\n" for row in range(3000)).encode()  # two-byte characters across blocks
    broken = rows + b"1,\xe9\n"
    (tmp_path / "deep.csv").write_bytes(broken)
    assert _where_undecodable(str(tmp_path / "deep.csv"), "utf-8", block=1000) == \
        f"byte offset {len(rows) + 2} (0-based), line 3001"


# -- 7. what is not a regular file, or too large ----------------------------------------------

@pytest.mark.skipif(not os.path.exists("/dev/zero") or not hasattr(os, "mkfifo"), reason="needs /dev/zero and mkfifo")
def test_links_to_devices_and_named_pipes_are_refused_before_a_byte_is_read(tmp_path):
    os.symlink("/dev/zero", tmp_path / "zero.csv")
    os.mkfifo(tmp_path / "pipe.csv")  # opened for reading, it would block until a writer came
    (tmp_path / "folder.csv").mkdir()
    train_refused(tmp_path, "zero.csv", "zero.csv: is a character device (a link to /dev/zero), not a regular data "
                                        "file")
    train_refused(tmp_path, "pipe.csv", "pipe.csv: is a named pipe, not a regular data file")
    train_refused(tmp_path, "folder.csv", "folder.csv: is a directory, not a regular data file")


def test_a_file_too_large_for_memory_is_refused_with_its_size(tmp_path, monkeypatch):
    frame().to_csv(tmp_path / "table.csv", index=False)
    size = os.path.getsize(tmp_path / "table.csv")
    monkeypatch.setattr(machine, "physical_memory_bytes", lambda: size)  # a machine with as much memory as the file
    with pytest.raises(DatasetError, match=r"the file is [0-9.e-]+ GiB; reading it needs more than this machine's"):
        datasets.read(tmp_path / "table.csv", target="label")
    monkeypatch.setattr(machine, "physical_memory_bytes", lambda: 4 * size)
    assert datasets.read(tmp_path / "table.csv", target="label").n_features == 2


# -- 8. compressed files cut short, or without their decompressor ------------------------------

def zipped(name, content):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as writer:
        writer.writestr(name, content)
    return archive.getvalue()


def test_truncated_compressed_files_are_refused_in_one_line(tmp_path):
    text = frame().to_csv(index=False).encode()
    for ending, packed in (("gz", gzip.compress(text)), ("bz2", bz2.compress(text)), ("xz", lzma.compress(text))):
        (tmp_path / f"cut.csv.{ending}").write_bytes(packed[:len(packed) // 2])
        train_refused(tmp_path, f"cut.csv.{ending}", f"cut.csv.{ending}: the compressed file ends too early "
                                                     "(truncated?)")
    packed = zipped("cut.csv", text)
    (tmp_path / "cut.csv.zip").write_bytes(packed[:len(packed) // 2])
    train_refused(tmp_path, "cut.csv.zip", "cut.csv.zip: not a readable zip archive")
    arrays = io.BytesIO()
    np.savez(arrays, X=np.ones((40, 3)), y=np.arange(40) % 2)
    (tmp_path / "cut.npz").write_bytes(arrays.getvalue()[:arrays.getbuffer().nbytes // 2])
    assert_refused(["train", "--dataset", "cut.npz", "--epochs", "1"], tmp_path,
                   "cut.npz: cannot be read as a .npz file")


def test_a_zstandard_file_without_zstandard_is_refused_in_one_line(tmp_path, monkeypatch):
    (tmp_path / "table.csv.zst").write_bytes(b"(\xb5/\xfd not really zstandard")
    monkeypatch.setitem(sys.modules, "zstandard", None)  # import zstandard raises ImportError, installed or not
    train_refused(tmp_path, "table.csv.zst", "reading a .zst file needs the zstandard package: pip install zstandard")
