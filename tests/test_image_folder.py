"""`--data folder:DIR`: layouts, channels, sizes, the split, the cache, warnings and errors."""

import csv
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nasbox.cli import main
from nasbox.data import folder as image_folder
from nasbox.data import load_data, load_folder
from nasbox.errors import NasboxError

CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|"


@pytest.fixture(autouse=True)
def _fresh(monkeypatch, tmp_path):
    """No folder loaded by another test, and a user cache folder inside tmp_path."""
    image_folder._loaded.clear()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))


@pytest.fixture
def archs(tmp_path) -> str:
    path = tmp_path / "cells.txt"
    path.write_text(CELL + "\n")
    return str(path)


def save(path: Path, size=(12, 10), mode="RGB", seed=0, **options) -> np.ndarray:
    """A random image of `size` (width, height); its pixels as Pillow decodes them back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = rng.integers(0, 256, size=(size[1], size[0], channels), dtype=np.uint8)
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(path, **options)
    return pixels


def flat_folder(root: Path, classes=("cat", "dog", "fish"), per_class=6, size=(12, 10)) -> Path:
    for number, name in enumerate(classes):
        for index in range(per_class):
            save(root / name / f"{index}.png", size=size, seed=10 * number + index)
    return root


def test_flat_layout_classes_split_and_skipped_files(tmp_path, capsys):
    root = flat_folder(tmp_path / "pets")
    save(root / "dog" / "big.JPG", size=(40, 30), quality=95)  # another size, upper-case suffix
    save(root / "fish" / "gray.png", mode="L", seed=7)
    save(root / "cat" / "nested" / "deep.png", seed=8)
    (root / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "dog" / "notes.txt").write_text("not an image")
    (root / "dog" / ".hidden.png").write_bytes(b"hidden, never read")
    (root / ".thumbnails").mkdir()
    data = load_folder(root)
    assert data.classes == ("cat", "dog", "fish")
    assert data.x_train.shape[1:] == (3, 32, 32)  # sizes differ: 32 x 32; gray joins RGB
    labels = np.concatenate([data.y_train, data.y_test])
    assert np.bincount(labels).tolist() == [7, 7, 7]  # 6 + 1 readable extra per class
    assert np.bincount(data.y_test).tolist() == [1, 1, 1]  # int(7 * 20%) of each class
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2
    assert err[0].startswith(f"nasbox: warning: {root}: skipped 1 unreadable image file(s)")
    assert "cat/broken.png" in err[0]
    assert "classes 0=cat 1=dog 2=fish; 18 train, 3 test images" in err[1]
    assert "cached in" in err[1]


def test_linked_folders_are_followed_like_linked_files_and_each_read_once(tmp_path):
    """A linked folder inside a class folder was skipped silently (linked files were read)."""
    root = flat_folder(tmp_path / "pets", classes=("cat", "dog"), per_class=5)
    save(tmp_path / "more" / "extra.png", seed=40)
    (root / "cat" / "more").symlink_to(tmp_path / "more", target_is_directory=True)
    (root / "cat" / "again").symlink_to(tmp_path / "more", target_is_directory=True)
    (root / "cat" / "loop").symlink_to(root / "cat", target_is_directory=True)
    (root / "dog" / "file.png").symlink_to(tmp_path / "more" / "extra.png")
    data = load_folder(root)
    labels = np.concatenate([data.y_train, data.y_test])
    assert np.bincount(labels).tolist() == [6, 6]  # "again" and "loop" add nothing twice


def test_links_to_the_data_sets_own_folders_add_nothing(tmp_path):
    """`cat/up -> ..` read every dog image a second time, labelled cat, and a training class's
    link to the test split put the test images into training."""
    root = flat_folder(tmp_path / "pets", classes=("cat", "dog"), per_class=5)
    (root / "cat" / "up").symlink_to("..", target_is_directory=True)
    (root / "cat" / "dogs").symlink_to(root / "dog", target_is_directory=True)
    data = load_folder(root)
    labels = np.concatenate([data.y_train, data.y_test])
    assert np.bincount(labels).tolist() == [5, 5]
    split = flat_folder(tmp_path / "split" / "train", classes=("cat", "dog"), per_class=5)
    flat_folder(split.parent / "test", classes=("cat", "dog"), per_class=2)
    (split / "cat" / "tests").symlink_to(split.parent / "test", target_is_directory=True)
    data = load_folder(split.parent)
    assert np.bincount(data.y_train).tolist() == [5, 5]
    assert np.bincount(data.y_test).tolist() == [2, 2]


def test_images_smaller_than_the_networks_take_are_refused_unless_resized(tmp_path):
    """1x1 images were kept at their size, and every score on them meant nothing."""
    root = flat_folder(tmp_path / "dots", classes=("a", "b"), per_class=3, size=(1, 1))
    with pytest.raises(NasboxError, match=r"the images are 1x1, smaller than 8x8 pixels") as info:
        load_folder(root)
    assert str(root) in str(info.value) and "--image-size 8 or larger" in str(info.value)
    assert load_folder(root, image_size=8).image_size == (8, 8)


def test_sizes_and_channels_are_kept_when_all_images_share_them(tmp_path):
    gray = tmp_path / "gray"
    for index in range(4):
        save(gray / f"c{index % 2}" / f"{index}.png", size=(12, 10), mode="L", seed=index)
    data = load_folder(gray)
    assert data.in_channels == 1 and data.image_size == (10, 12)
    rgba = tmp_path / "rgba"
    expected = {
        index: save(rgba / f"c{index % 2}" / f"{index}.png", mode="RGBA", seed=index)
        for index in range(10)
    }
    data = load_folder(rgba)
    assert data.in_channels == 3  # alpha dropped
    images = np.concatenate([data.x_train, data.x_test]).transpose(0, 2, 3, 1)
    assert {bytes(image) for image in images} == {bytes(e[..., :3]) for e in expected.values()}


def test_sixteen_bit_gray_and_exif_rotation(tmp_path):
    root = tmp_path / "mixed"
    deep = np.arange(20 * 12, dtype=np.uint16).reshape(20, 12) * 270
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        Image.fromarray(deep).save(root / name / "deep.png")
    data = load_folder(root)
    assert data.in_channels == 1
    assert (data.x_train[0, 0] == deep // 257).all()
    rotated = tmp_path / "rotated"
    exif = Image.Exif()
    exif[image_folder.EXIF_ORIENTATION] = 6  # stored 20 wide, 10 high; shown 10 wide, 20 high
    for name in ("a", "b"):
        save(rotated / name / "photo.jpg", size=(20, 10), exif=exif.tobytes())
    assert load_folder(rotated).image_size == (20, 10)


def test_every_listed_format_is_read(tmp_path):
    root = tmp_path / "formats"
    suffixes = [".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"]
    for index, suffix in enumerate(suffixes):
        save(root / f"c{index % 2}" / f"{index}{suffix.upper() if index % 3 else suffix}")
    data = load_folder(root)
    assert len(data.y_train) == len(suffixes) and data.y_test is None  # 4 a class: none held out


def test_train_and_test_folders(tmp_path):
    root = tmp_path / "split"
    train = {name: save(root / "train" / name / "0.png", seed=i) for i, name in enumerate("ab")}
    save(root / "train" / "a" / "1.png", seed=5)
    test = save(root / "test" / "b" / "0.png", seed=9)
    data = load_folder(root)
    assert data.classes == ("a", "b")
    assert data.y_train.tolist() == [0, 0, 1] and data.y_test.tolist() == [1]
    assert (data.x_test[0].transpose(1, 2, 0) == test).all()
    assert (data.x_train[2].transpose(1, 2, 0) == train["b"]).all()
    val = tmp_path / "val-layout"
    flat_folder(val / "train", classes=("a", "b"), per_class=2)
    save(val / "val" / "a" / "0.png")
    assert len(load_folder(val).y_test) == 1


def test_the_split_is_seeded(tmp_path):
    root = flat_folder(tmp_path / "pets", per_class=10)
    first = load_folder(root)
    image_folder._loaded.clear()
    again = load_folder(root)
    other = load_folder(root, split_seed=1)
    assert (first.x_test == again.x_test).all()
    assert not (first.x_test == other.x_test).all()


def test_normalisation_statistics_come_from_the_training_images(tmp_path):
    data = load_folder(flat_folder(tmp_path / "pets"))
    scaled = data.x_train.astype(np.float64) / 255
    assert data.mean == pytest.approx(scaled.mean(axis=(0, 2, 3)).tolist())
    assert data.std == pytest.approx(scaled.std(axis=(0, 2, 3)).tolist())
    images, _ = data.batch(len(data.x_train), seed=0)
    assert images.mean(dim=(0, 2, 3)).abs().max() < 1e-5


def test_large_images_kept_at_their_size_get_a_note(tmp_path, capsys):
    """Photos of one size (e.g. 3000x3000) were kept so without a word, and networks trained
    on them very slowly or ran out of memory."""
    large = flat_folder(tmp_path / "large", classes=("a", "b"), per_class=2, size=(300, 257))
    assert load_folder(large).image_size == (257, 300)
    note = capsys.readouterr().err.splitlines()[1:]
    assert note == [
        f"nasbox: note: {large}: the images keep their 257x300 pixels (they share one size and "
        "--image-size is not given), on which networks train very slowly or run out of memory; "
        "pass --image-size 32 (or another size) to resize them"
    ]
    load_folder(large, image_size=300)
    load_folder(flat_folder(tmp_path / "edge", classes=("a", "b"), per_class=2, size=(256, 256)))
    assert "keep their" not in capsys.readouterr().err


def test_images_too_large_for_memory_are_refused_before_decoding(tmp_path, monkeypatch):
    """A folder of photos kept at full size filled the memory while decoding, and the process
    was killed without a word; the headers alone tell the size."""
    import nasbox.cpu

    large = flat_folder(tmp_path / "large", classes=("a", "b"), per_class=2, size=(300, 257))
    monkeypatch.setattr(nasbox.cpu, "available_memory", lambda: 2**19)
    with pytest.raises(NasboxError) as refused:
        load_folder(large)
    assert str(refused.value) == (
        f"{large}: decoding 4 images of 257x300 pixels needs about 0.0 GiB, and 0.0 GiB of memory "
        "is available; pass --image-size 32 (or another size) to resize them as they are read"
    )
    with pytest.raises(NasboxError, match="pass a smaller --image-size to resize"):
        load_folder(large, image_size=256)
    assert load_folder(large, image_size=32).image_size == (32, 32)


def test_image_size_resizes_folders_and_is_refused_elsewhere(tmp_path, tiny_npz):
    root = flat_folder(tmp_path / "pets")
    assert load_data(f"folder:{root}", image_size=16).image_size == (16, 16)
    assert load_data(f"folder:{root}").image_size == (10, 12)
    assert {path.name for path in root.glob(".nasbox-cache*")} == {
        ".nasbox-cache-16.npz",  # each size keeps its own cache
        ".nasbox-cache-auto.npz",
    }
    with pytest.raises(NasboxError, match="--image-size must be from 8 to 1024, got 4"):
        load_data(f"folder:{root}", image_size=4)
    with pytest.raises(NasboxError, match="folder:DIR only"):
        load_data(f"npz:{tiny_npz}", image_size=16)


def test_decoded_once_then_read_from_the_cache(tmp_path, monkeypatch, capsys):
    root = flat_folder(tmp_path / "pets")
    first = load_folder(root)
    assert (root / ".nasbox-cache-auto.npz").is_file()
    assert not list(root.glob("*.tmp"))
    image_folder._loaded.clear()
    decode = image_folder._decode
    monkeypatch.setattr(image_folder, "_decode", None)  # a second decode would fail
    cached = load_folder(root)
    assert (cached.x_train == first.x_train).all() and cached.classes == first.classes
    assert "read from" in capsys.readouterr().err
    assert load_folder(root) is cached  # in memory: not even the cache file is read
    image_folder._loaded.clear()
    os.utime(root / "cat" / "0.png", ns=(1, 1))  # a changed file is decoded again
    with pytest.raises(TypeError):
        load_folder(root)
    monkeypatch.setattr(image_folder, "_decode", decode)
    (root / ".nasbox-cache-auto.npz").write_bytes(b"damaged")
    assert (load_folder(root).x_train == first.x_train).all()


def test_an_unwritable_folder_caches_in_the_user_folder_or_nowhere(tmp_path, monkeypatch, capsys):
    root = flat_folder(tmp_path / "pets")
    (root / ".nasbox-cache-auto.npz").mkdir()  # cannot be replaced by a file
    load_folder(root)
    user = list((tmp_path / "user-cache" / "nasbox" / "folders").glob("*.npz"))
    assert len(user) == 1 and f"cached in {user[0]}" in capsys.readouterr().err
    image_folder._loaded.clear()
    monkeypatch.setenv("XDG_CACHE_HOME", str(root / "cat" / "0.png"))  # a file: no folder inside
    os.utime(root / "dog" / "0.png", ns=(1, 1))
    data = load_folder(root)
    assert len(data.classes) == 3 and "not cached" in capsys.readouterr().err
    assert not list(root.glob("*.tmp"))


def test_a_class_without_readable_images_is_left_out_with_a_warning(tmp_path, capsys):
    root = flat_folder(tmp_path / "pets", classes=("cat", "dog"))
    (root / "emu").mkdir()
    (root / "emu" / "a.png").write_bytes(b"broken")
    (root / "emu" / "b.jpg").write_bytes(b"")
    data = load_folder(root)
    assert data.classes == ("cat", "dog")
    warning = capsys.readouterr().err.splitlines()[0]
    assert "skipped 2 unreadable" in warning
    assert warning.endswith("left out class folder(s) without a readable training image: emu")


def _layout(root: Path, kind: str) -> Path:
    if kind == "missing":
        return root / "nowhere"
    if kind == "file":
        root.write_text("x")
    elif kind == "loose":
        save(root / "a.png")
    elif kind == "one class":
        save(root / "only" / "a.png")
    elif kind == "test without train":
        flat_folder(root / "test", classes=("a", "b"), per_class=1)
    elif kind == "test class not trained":
        flat_folder(root / "train", classes=("a", "b"), per_class=1)
        save(root / "test" / "c" / "0.png")
    elif kind == "split folders in capitals":
        flat_folder(root / "Train", classes=("a", "b"), per_class=1)
        flat_folder(root / "Test", classes=("a", "b"), per_class=1)
    elif kind == "testing beside train":
        flat_folder(root / "train", classes=("a", "b"), per_class=5)
        flat_folder(root / "testing", classes=("a", "b"), per_class=1)
    elif kind == "all corrupt":
        for name in ("a", "b"):
            (root / name).mkdir(parents=True)
            (root / name / "x.png").write_bytes(b"junk")
    elif kind == "one readable class":
        save(root / "a" / "x.png")
        (root / "b").mkdir()
        (root / "b" / "x.png").write_bytes(b"junk")
    elif kind == "no readable training image":
        for name in ("a", "b"):
            (root / "train" / name).mkdir(parents=True)
            (root / "train" / name / "x.png").write_bytes(b"junk")
            save(root / "test" / name / "y.png")
    elif kind == "constant":
        for name in ("a", "b"):
            (root / name).mkdir(parents=True)
            Image.new("L", (8, 8), 7).save(root / name / "x.png")
    else:
        (root / "a").mkdir(parents=True)
        (root / "a" / "readme.txt").write_text("no images")
    return root


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "folder not found"),
        ("file", "not a folder"),
        ("empty", "no image files found"),
        ("loose", "1 images lie directly in"),
        ("one class", "only the class folder 'only' holds images"),
        ("test without train", "has test/ but no train/"),
        ("test class not trained", "has no class folder 'c'"),
        (  # read as the classes 'Test' and 'Train', every image labelled by its split
            "split folders in capitals",
            "Test: named like the test split, but folder:DIR reads splits only from folders "
            "named train/ and test/ (or val/), so it would be read as the class 'Test'; rename",
        ),
        (  # testing/ was not read, and a fifth of train/ was held out instead
            "testing beside train",
            "testing: named like the test split, but folder:DIR reads splits only from folders "
            "named train/ and test/ (or val/), so it would be left unread; rename it to",
        ),
        ("all corrupt", "none of the 2 image files could be read"),
        ("one readable class", "only the class 'a' has a readable training image (of 2"),
        ("no readable training image", "no class has a readable training image (of 4"),
        ("constant", "constant images"),
    ],
)
def test_bad_folders_are_one_line_naming_the_folder(tmp_path, kind, message, archs, capsys):
    folder = _layout(tmp_path / "data", kind)
    assert main(["score", "--data", f"folder:{folder}", "--archs", archs, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert message in err[-1] and str(folder) in err[-1]


def test_classes_named_like_splits_are_classes(tmp_path):
    """Only a folder of class folders is taken for a misspelt split; images of the class valid/
    lie in it directly."""
    root = flat_folder(tmp_path / "parts", classes=("invalid", "valid"), per_class=2)
    assert load_folder(root).classes == ("invalid", "valid")


def test_images_beside_the_class_folders_are_named_as_unread(tmp_path, capsys):
    """An image in DIR itself has no class; it was skipped without a word."""
    root = flat_folder(tmp_path / "pets", classes=("cat", "dog"), per_class=5)
    save(root / "stray.png")
    data = load_folder(root)
    assert len(data.x_train) + len(data.x_test) == 10
    assert "1 image(s) lie beside the class folders, e.g. stray.png" in capsys.readouterr().err


def test_a_val_folder_beside_test_is_named_as_unread(tmp_path, capsys):
    """With train/, val/ and test/, test/ is the held-out split; val/ was skipped silently."""
    for split in ("train", "val", "test"):
        flat_folder(tmp_path / "pets" / split, classes=("cat", "dog"), per_class=2)
    data = load_folder(tmp_path / "pets")
    assert len(data.x_train) == len(data.x_test) == 4
    assert "reads test/ as the test split; its val/ folder is not read" in capsys.readouterr().err


def test_image_size_with_a_source_that_cannot_resize_is_one_line(archs, capsys):
    assert main(["score", "--image-size", "16", "--archs", archs, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--image-size resizes the images of --data folder:DIR only" in err[0]


def test_score_on_a_folder(tmp_path, archs, capsys):
    root = flat_folder(tmp_path / "pets")
    out = tmp_path / "scores.csv"
    command = ["score", "--data", f"folder:{root}", "--image-size", "16", "--estimator", "naswot"]
    assert main([*command, "--archs", archs, "--out", str(out), "--quiet"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [row["arch"] for row in rows] == [CELL] and float(rows[0]["naswot"]) != 0
    assert "3x16x16" in capsys.readouterr().err


def test_search_on_a_folder_end_to_end(tmp_path):
    root = flat_folder(tmp_path / "pets", classes=("cat", "dog"))
    save(root / "dog" / "small.jpg", size=(9, 9))
    (root / "cat" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\ntruncated")
    out = tmp_path / "run"
    command = [sys.executable, "-m", "nasbox.cli", "search", "--data", f"folder:{root}"]
    options = ["--space", "nb201", "--estimator", "naswot", "--samples", "3", "--quiet"]
    options += ["--image-size", "16", "--batch-size", "8"]  # quick on a busy machine
    done = subprocess.run(
        [*command, *options, "--out", str(out)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "skipped 1 unreadable image file(s)" in warnings[0]
    assert "classes 0=cat 1=dog" in done.stderr
    summary = json.loads((out / "summary.json").read_text())
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert len(rows) == 3 and all(row["state"] == "complete" for row in rows)
    assert summary["best_value"] == max(float(row["value"]) for row in rows)


def test_large_images_load_without_a_raw_python_warning(tmp_path, monkeypatch):
    """Pillow warns about images over MAX_IMAGE_PIXELS (89 million); such a photo is decoded
    and resized like any other, and the warning printed two raw lines per file on stderr."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # so that 12x10 images count as large
    for name in ("cat", "dog"):
        save(tmp_path / "photos" / name / "1.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_folder(tmp_path / "photos")
    assert data.image_size == (10, 12)
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
