import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from nasbox.data import load_data, load_folder, load_npz, load_text, load_text_source
from nasbox.data.images import channel_statistics
from nasbox.errors import NasboxError


def test_digits_is_bundled_and_normalised():
    data = load_data("digits")
    assert data.x_train.shape[1:] == (1, 8, 8)
    assert data.num_classes == 10
    images, labels = data.batch(128, seed=0)
    assert images.shape == (128, 1, 8, 8) and labels.shape == (128,)
    assert abs(float(images.mean())) < 0.2 and 0.8 < float(images.std()) < 1.2


def test_channel_statistics_match_numpy_across_chunks():
    images = np.random.default_rng(0).integers(0, 256, size=(600, 3, 5, 4), dtype=np.uint8)
    scaled = images.astype(np.float64) / 255
    mean, std = channel_statistics(images, chunk_pixels=1000)  # 16 images a chunk
    assert mean == pytest.approx(scaled.mean(axis=(0, 2, 3)).tolist(), rel=1e-12)
    assert std == pytest.approx(scaled.std(axis=(0, 2, 3)).tolist(), rel=1e-12)


def test_batches_are_seeded():
    data = load_data("digits")
    assert (data.batch(16, seed=4)[0] == data.batch(16, seed=4)[0]).all()
    assert not (data.batch(16, seed=4)[0] == data.batch(16, seed=5)[0]).all()


def test_npz_nhwc_is_converted_to_nchw(tiny_npz):
    data = load_data(f"npz:{tiny_npz}")
    assert data.x_train.shape == (40, 3, 8, 8)
    assert data.x_test.shape == (10, 3, 8, 8)
    assert len(data.mean) == 3


@pytest.mark.parametrize(
    ("arrays", "problem"),
    [
        ({"x_train": np.zeros((4, 3, 8, 8), np.uint8)}, "missing array"),
        ({"x_train": np.zeros((4, 3, 8, 8)), "y_train": np.zeros(4, int)}, "uint8"),
        ({"x_train": np.zeros((4, 3, 8, 8), np.uint8), "y_train": np.zeros(3, int)}, "4 labels"),
        (
            {
                "x_train": np.zeros((4, 3, 8, 8), np.uint8),
                "y_train": np.zeros(4, int),
                "x_test": np.zeros((2, 3, 9, 9), np.uint8),
                "y_test": np.zeros(2, int),
            },
            "x_test images",
        ),
        ({"x_train": np.zeros((4, 0, 0), np.uint8), "y_train": np.zeros(4, int)}, "without pixels"),
        (
            {"x_train": np.zeros((4, 3, 0, 5), np.uint8), "y_train": np.zeros(4, int)},
            r"\(4, 3, 0, 5\), images without pixels",
        ),
        (  # networks on 1x1 images scored and trained without a word
            {"x_train": np.zeros((4, 3, 1, 1), np.uint8), "y_train": np.zeros(4, int)},
            r"\(4, 3, 1, 1\), images smaller than 8x8 pixels.*; save images of at least 8x8",
        ),
        (
            {"x_train": np.zeros((4, 7, 9, 1), np.uint8), "y_train": np.zeros(4, int)},
            r"\(4, 7, 9, 1\), images smaller than 8x8 pixels",
        ),
        (
            {
                "x_train": np.arange(768).astype(np.uint8).reshape(4, 3, 8, 8),
                "y_train": np.array([0, 1, 0, 2**64 - 1], np.uint64),
            },
            "y_train holds label 18446744073709551615",
        ),
    ],
)
def test_npz_problems_name_the_file(tmp_path, arrays, problem):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(NasboxError, match=problem) as info:
        load_data(f"npz:{path}")
    assert str(path) in str(info.value)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(NasboxError, match="file not found"):
        load_data(f"npz:{tmp_path / 'nope.npz'}")
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 then not a zip file at all")
    with pytest.raises(NasboxError, match="not a readable .npz"):
        load_data(f"npz:{corrupt}")
    with pytest.raises(NasboxError, match="unknown data set"):
        load_data("mnist")
    with pytest.raises(NasboxError, match="--data-dir"):
        load_data("cifar10")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: load_data(None), "load_data needs spec to be a string, got None (NoneType)"),
        (lambda: load_data(Path("x.npz")), "load_data needs spec to be a string, got Posix"),
        (lambda: load_npz(3), "load_npz needs file to be a path (a str or Path), got 3 (int)"),
        (lambda: load_folder(None), "load_folder needs directory to be a path (a str or Path)"),
        (lambda: load_data("cifar10", data_dir=1), "load_cifar10 needs data_dir to be a path"),
        (lambda: load_text_source(None), "load_text_source needs spec to be a string"),
        (lambda: load_text(None), "load_text needs file to be a path (a str or Path)"),
    ],
)
def test_a_name_or_path_of_the_wrong_type_is_one_line(call, message):
    with pytest.raises(NasboxError, match=re.escape(message)):
        call()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("x_train,y_train\n1,0\n", r"text.npz: not an .npz archive \(a numpy.savez zip file\)"),
        (b"", "text.npz: the file is empty, not an .npz archive"),
        ("folder", "text.npz: is a folder, not an .npz file; give the file"),
    ],
)
def test_a_file_that_is_not_an_npz_says_so(tmp_path, content, problem):
    """A text file was read as a pickle: numpy's error said it 'contains pickled (object) data'
    and suggested loading it unsafely with allow_pickle; a folder was 'file not found'."""
    path = tmp_path / "text.npz"
    if content == "folder":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(NasboxError, match=problem) as info:
        load_data(f"npz:{path}")
    message = str(info.value)
    assert "pickle" not in message
    if content != "folder":
        assert "numpy.savez(FILE, x_train=..., y_train=..., x_test=..., y_test=...)" in message


def test_a_zip_whose_members_are_not_npy_arrays_says_so(tmp_path):
    """numpy reads a member not saved as .npy as bytes, which failed with an AttributeError
    about `dtype`."""
    path = tmp_path / "zipped.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x_train", "pixels as text")
        archive.writestr("y_train", "0 1 0 1")
    with pytest.raises(NasboxError, match="x_train, y_train not saved as .npy array") as info:
        load_data(f"npz:{path}")
    assert "numpy.savez(FILE, x_train=" in str(info.value)


def test_an_npz_of_python_objects_names_the_array(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, x_train=np.array([1, "a", None], dtype=object), y_train=np.zeros(3, int))
    with pytest.raises(NasboxError, match="x_train holds Python objects") as info:
        load_data(f"npz:{path}")
    assert "allow_pickle" not in str(info.value)


def _write_cifar(folder, rows: int = 6, pixels=None, labels=None):
    rng = np.random.default_rng(0)
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, size=(rows, 3072), dtype=np.uint8)
            if pixels is None
            else pixels(rows),
            b"labels": list(rng.integers(0, 10, size=rows)) if labels is None else labels(rows),
        }
        (folder / name).write_bytes(pickle.dumps(batch))


def test_cifar10_python_batches(tmp_path):
    _write_cifar(tmp_path / "cifar-10-batches-py")
    data = load_data("cifar10", tmp_path)
    assert data.x_train.shape == (30, 3, 32, 32) and data.x_test.shape == (6, 3, 32, 32)
    assert data.mean == pytest.approx((0.4914, 0.4822, 0.4465))


def test_cifar10_data_dir_that_is_a_file_is_called_a_file(tmp_path):
    """A file given as --data-dir was reported as a folder not found."""
    batch = tmp_path / "data_batch_1"
    batch.write_bytes(b"")
    with pytest.raises(NasboxError, match="a file, not a folder; --data-dir takes the folder"):
        load_data("cifar10", batch)
    with pytest.raises(NasboxError, match="folder not found; --data-dir takes the folder"):
        load_data("cifar10", tmp_path / "missing")


def test_cifar10_refuses_missing_corrupt_and_code_carrying_batches(tmp_path):
    folder = tmp_path / "batches"
    _write_cifar(folder)
    (folder / "test_batch").unlink()
    with pytest.raises(NasboxError, match="test_batch: file not found"):
        load_data("cifar10", folder)
    (folder / "test_batch").write_bytes(b"garbage")
    with pytest.raises(NasboxError, match="not a CIFAR-10 python batch"):
        load_data("cifar10", folder)
    (folder / "test_batch").write_bytes(pickle.dumps(print))
    with pytest.raises(NasboxError, match="refusing to load"):
        load_data("cifar10", folder)


@pytest.mark.parametrize(
    ("pixels", "labels", "message"),
    [
        (None, lambda rows: list(np.arange(rows) - 1), "y_train holds label -1"),
        (lambda rows: np.zeros((rows, 3072), np.uint8), None, "every pixel .* is 0"),
        (lambda rows: np.full((rows, 3072), 0.5), None, "must be uint8 .* float64"),
        (lambda rows: np.full((rows, 3072), 300), None, "must be uint8 .* int64"),
    ],
    ids=["negative-label", "constant", "float-pixels", "wide-pixels"],
)
def test_cifar10_refuses_batches_that_would_train_on_nonsense(tmp_path, pixels, labels, message):
    """Negative labels would fail deep inside the loss; other pixel types would be cast to
    uint8 silently (0..1 floats to zeros, 300 wrapped round)."""
    _write_cifar(tmp_path / "batches", pixels=pixels, labels=labels)
    with pytest.raises(NasboxError, match=message):
        load_data("cifar10", tmp_path / "batches")


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (pickle.dumps(np.zeros(5)), "holds a ndarray, not a dict"),
        (pickle.dumps({b"data": np.zeros((0, 3072), np.uint8), b"labels": []}), "holds no images"),
        (
            pickle.dumps({b"data": np.ones((2, 3072), np.uint8), b"labels": [[0], [1]]}),
            r"labels must be a flat list, found shape \(2, 1\)",
        ),
        (
            b"\x80\x04}(K\x01\x90.",
            "not a CIFAR-10 python batch .*no attribute",
        ),  # ADDITEMS on a dict
    ],
    ids=["array", "empty", "nested-labels", "damaged"],
)
def test_cifar10_refuses_batches_of_the_wrong_shape_in_one_line(tmp_path, batch, message):
    """A pickled array raised IndexError, an empty batch ValueError from numpy, a damaged
    pickle AttributeError or MemoryError; nested labels were taken as they were."""
    folder = tmp_path / "batches"
    _write_cifar(folder)
    (folder / "data_batch_3").write_bytes(batch)
    with pytest.raises(NasboxError, match=message):
        load_data("cifar10", folder)


@pytest.mark.parametrize(
    ("dtype", "fix"), [("float32", "np.round(x * 255)"), ("int64", "np.round(x)")]
)
def test_npz_pixels_of_another_type_get_the_conversion(tmp_path, dtype, fix):
    """Pixels saved as floats (0..1, as most pipelines hold them) or wide ints were refused
    without saying how to convert them."""
    path = tmp_path / "floats.npz"
    np.savez(path, x_train=np.zeros((4, 3, 8, 8), dtype), y_train=np.array([0, 1, 0, 1]))
    with pytest.raises(
        NasboxError, match=f"x_train must be uint8 images .0..255., found dtype {dtype}"
    ) as info:
        load_data(f"npz:{path}")
    assert f"save x_train={fix}.clip(0, 255).astype(np.uint8)" in str(info.value)
