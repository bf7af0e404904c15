"""`--data folder:DIR`: an image classification data set from one folder per class.

Layouts: `DIR/train/<class>/...` with `DIR/test/<class>/...` (or `DIR/val/<class>/...`), or
`DIR/<class>/...`; without test images, a seeded 20% of each class is held out as the test
split. Images are decoded with Pillow once, then read back from a cache file
(`DIR/.nasbox-cache-auto.npz`, `-N.npz` for --image-size N, or in the user's cache folder when
DIR cannot be written) that is keyed by every image file's path, size and modification time, so
a changed folder is decoded again.
"""

import contextlib
import hashlib
import json
import math
import multiprocessing
import os
import sys
import time
import warnings
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nasbox.checks import check_path
from nasbox.data.images import MIN_IMAGE_SIDE, ImageData, check_image_side, check_not_constant
from nasbox.errors import NasboxError, error_reason, note

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
TEST_FOLDERS = ("test", "val")
# Split folders by other spellings (any letter case), and the name folder:DIR reads them by.
SPLIT_SPELLINGS = {
    "train": "train",
    "training": "train",
    "test": "test",
    "testing": "test",
    "val": "val",
    "valid": "val",
    "validation": "val",
}
# The split is a property of the data set, not of one search: every command (and every worker
# process) holds out the same images, so scores from runs with different --seed compare.
SPLIT_SEED = 0
TEST_FRACTION = 0.2
MIXED_SIZES_SIDE = 32  # images of several sizes are resized to this square without --image-size
# Images of one size larger than this on a side, kept so without --image-size, get a note: the
# networks train on them very slowly or run out of memory (photos are thousands of pixels wide).
LARGE_IMAGE_SIDE = 256
IMAGE_SIZE_RANGE = (MIN_IMAGE_SIDE, 1024)
CACHE_PREFIX = ".nasbox-cache"  # hidden, so never listed as an image
CACHE_VERSION = 1  # bump when decoding changes, so older caches are decoded again
GRAY_MODES = {"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"}
EXIF_ORIENTATION = 0x0112
ROTATED_ORIENTATIONS = {5, 6, 7, 8}  # orientations that swap width and height
CLASSES_SHOWN = 20

# The last folder loaded in this process, by cache key and split seed: loading the same folder
# again (same files, same size) costs a directory listing, and reports nothing a second time.
_loaded: dict[tuple, ImageData] = {}


@dataclass(frozen=True)
class _ImageFile:
    path: Path
    label: str  # class folder name
    test: bool  # under DIR/test (or DIR/val)


@dataclass
class _Decoded:
    """What decoding produced for the listed files; this is what the cache holds."""

    pixels: np.ndarray  # uint8 NCHW, one row per readable file, in listing order
    readable: np.ndarray  # bool per listed file
    problems: list[str]  # "relative/path: reason" per unreadable file


def load_folder(
    directory: str | Path, image_size: int | None = None, split_seed: int = SPLIT_SEED
) -> ImageData:
    """Images in class folders -> ImageData with `classes` naming the class of each label.

    `image_size` N resizes every image to N x N; by default images keep their size when they
    all share one, else become 32 x 32. All grayscale -> 1 channel, otherwise RGB (alpha is
    dropped). Unreadable files and classes without a readable training image are left out
    with one warning line on stderr.
    """
    root = check_path(directory, "load_folder", "directory")
    if image_size is not None:
        low, high = IMAGE_SIZE_RANGE
        if not low <= image_size <= high:
            raise NasboxError(f"--image-size must be from {low} to {high}, got {image_size}")
    files, classes = _list_images(root)
    key = _cache_key(root, files, image_size)
    if (key, split_seed) in _loaded:
        return _loaded[key, split_seed]
    in_main = multiprocessing.parent_process() is None  # workers repeat no bar and no note
    paths = _cache_paths(root, image_size)
    decoded, cache = _read_cache(paths, key, len(files))
    origin = f"read from {cache}"
    if decoded is None:
        started = time.perf_counter()
        decoded = _decode(root, files, image_size, progress=in_main)
        seconds = time.perf_counter() - started
        cache = _write_cache(paths, key, decoded) if decoded.readable.any() else None
        stored = f"cached in {cache}" if cache else "not cached (no writable cache folder)"
        origin = f"decoded in {seconds:.1f} s, {stored}"
    data, left_out, split_given = _assemble(root, files, classes, decoded, split_seed)
    height, width = data.image_size
    check_image_side(
        data.x_train,
        f"{root}: the images are {height}x{width},",
        f"pass --image-size {MIN_IMAGE_SIDE} or larger to resize them",
    )
    if in_main:
        _report(root, data, decoded.problems, left_out, split_given, origin, image_size)
    _loaded.clear()
    _loaded[key, split_seed] = data
    return data


def _hidden(path: Path) -> bool:
    return path.name.startswith(".")


def _class_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not _hidden(p))


def _images_under(folder: Path, skip: frozenset[tuple[int, int]] = frozenset()) -> list[Path]:
    """Image files anywhere under `folder`, sorted; hidden files and folders are skipped.

    Linked folders are followed, as linked files are read; each folder is read once, so a link
    back up the tree (or a second link to one folder) adds nothing twice and ends. Links to the
    folders of `skip` (`_identity`) add nothing either.
    """
    found = []
    seen = {_identity(folder), *skip}
    for parent, folders, names in os.walk(folder, followlinks=True):
        folders[:] = [
            name
            for name in sorted(folders)
            if not name.startswith(".") and _first_visit(Path(parent, name), seen)
        ]
        found += [
            Path(parent, name)
            for name in names
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)
        ]
    return sorted(found)


def _identity(folder: Path) -> tuple[int, int]:
    stat = folder.stat()
    return stat.st_dev, stat.st_ino


def _first_visit(folder: Path, seen: set[tuple[int, int]]) -> bool:
    """Whether `folder` (through whatever links) was not reached before; it is now."""
    try:
        identity = _identity(folder)
    except OSError:  # vanished, or a link to nowhere
        return False
    if identity in seen:
        return False
    seen.add(identity)
    return True


def _list_images(root: Path) -> tuple[list[_ImageFile], list[str]]:
    """The image files by split and class, and the training class folders' names (sorted)."""
    layout = "DIR/<class>/*.png (or DIR/train/<class>/... and DIR/test/<class>/...)"
    if not root.exists():
        raise NasboxError(f"{root}: folder not found; folder:DIR reads {layout}")
    if not root.is_dir():
        raise NasboxError(f"{root}: not a folder; folder:DIR reads {layout}")
    train = root / "train"
    test = next((root / name for name in TEST_FOLDERS if (root / name).is_dir()), None)
    if not train.is_dir():
        if test is not None:
            raise NasboxError(
                f"{root}: has {test.name}/ but no train/; put the training images in "
                f"{train}/<class>/"
            )
        train, test = root, None
    if test is None:
        _check_split_spelling(root, train)
    elif (root / "val").is_dir() and test.name != "val":
        note(f"{root}: reads {test.name}/ as the test split; its val/ folder is not read")
    class_folders = _class_folders(train)
    test_folders = _class_folders(test) if test is not None else []
    # A link inside a class folder to the data set's own folders (`..`, the root, another
    # class) read every image there as this class's, the other classes' and the test split's.
    splits = [train] if test is None else [train, test]
    own = frozenset(map(_identity, [root, *splits, *class_folders, *test_folders]))
    files = [
        _ImageFile(path, folder.name, False)
        for folder in class_folders
        for path in _images_under(folder, own)
    ]
    if not files:
        loose = len(_images_under(train)) if not class_folders else 0
        found = f"{loose} images lie directly in {train}" if loose else "no image files found"
        raise NasboxError(
            f"{train}: {found}; put each class's images in its own folder, {train}/<class>/ "
            f"({', '.join(IMAGE_EXTENSIONS)})"
        )
    with_images = sorted({file.label for file in files})
    if len(with_images) < 2:
        raise NasboxError(
            f"{train}: only the class folder {with_images[0]!r} holds images; a classifier "
            f"needs at least 2 classes, each in its own folder {train}/<class>/"
        )
    for split in splits:
        _note_loose_images(split)
    classes = [folder.name for folder in class_folders]
    for folder in test_folders:
        if folder.name not in classes:
            raise NasboxError(
                f"{folder}: {train} has no class folder {folder.name!r}; the test classes "
                "must be training classes (same folder names)"
            )
        files += [_ImageFile(path, folder.name, True) for path in _images_under(folder, own)]
    return files, classes


def _note_loose_images(split: Path) -> None:
    """Images beside the class folders have no class, so they are not read: say so, as a user
    who added some there would otherwise not know."""
    loose = [
        path
        for path in split.iterdir()
        if path.is_file() and not _hidden(path) and path.name.lower().endswith(IMAGE_EXTENSIONS)
    ]
    if loose:
        note(
            f"{split}: {len(loose)} image(s) lie beside the class folders, e.g. {loose[0].name}; "
            "they have no class and are not read"
        )


def _check_split_spelling(root: Path, train: Path) -> None:
    """Refuse a split folder spelt otherwise (Train/, testing/) where no test folder was found:
    the flat layout read it as a class, labelling every image by its split, and beside train/ a
    test folder so spelt was not read (a fifth of train/ was held out instead). A split folder
    holds class folders, which tells it from a class named like a split (valid/ beside
    invalid/)."""
    for folder in _class_folders(root):
        split = SPLIT_SPELLINGS.get(folder.name.lower())
        if split is None or folder == train or (split == "train" and train != root):
            continue
        if not _class_folders(folder):
            continue
        misread = f"read as the class {folder.name!r}" if train == root else "left unread"
        raise NasboxError(
            f"{folder}: named like the {split} split, but folder:DIR reads splits only from "
            f"folders named train/ and test/ (or val/), so it would be {misread}; rename it "
            f"to {root / split}"
        )


def _cache_key(root: Path, files: list[_ImageFile], image_size: int | None) -> str:
    """Changes when any image file is added, removed, replaced or touched, or the size asked."""
    listing = []
    for file in files:
        try:
            stat = file.path.stat()
            listing.append([str(file.path.relative_to(root)), stat.st_size, stat.st_mtime_ns])
        except OSError:
            listing.append([str(file.path.relative_to(root)), -1, -1])
    text = json.dumps([CACHE_VERSION, image_size, listing])
    return hashlib.sha256(text.encode()).hexdigest()


def _cache_paths(root: Path, image_size: int | None) -> list[Path]:
    """Beside the images first, else the user's cache folder; one file per --image-size, so
    trying several sizes decodes each once."""
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    size = image_size or "auto"
    return [
        root / f"{CACHE_PREFIX}-{size}.npz",
        home / "nasbox" / "folders" / f"{folder}-{size}.npz",
    ]


def _read_cache(paths: list[Path], key: str, count: int) -> tuple[_Decoded | None, Path | None]:
    """An earlier command's decoded images of the `count` files and the cache file; None when
    absent, stale or damaged (then the images are decoded again and the cache replaced)."""
    for path in paths:
        try:
            with np.load(path, allow_pickle=False) as archive:
                if str(archive["key"]) != key:
                    continue
                decoded = _Decoded(
                    archive["pixels"], archive["readable"], archive["problems"].tolist()
                )
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            continue
        rows = int(decoded.readable.sum())
        if decoded.readable.shape == (count,) and decoded.pixels.shape[0] == rows:
            return decoded, path
    return None, None


def _write_cache(paths: list[Path], key: str, decoded: _Decoded) -> Path | None:
    """Atomically (a temporary file renamed into place); None when no place can be written."""
    arrays = {
        "key": np.array(key),
        "pixels": decoded.pixels,
        "readable": decoded.readable,
        "problems": np.array(decoded.problems, dtype=str),
    }
    for path in paths:
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with temporary.open("wb") as handle:
                np.savez(handle, **arrays)
            os.replace(temporary, path)
            return path
        except OSError:  # read-only, full or gone: try the next place, else keep it in memory
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)
    return None


def _header(path: Path) -> tuple[tuple[int, int], bool]:
    """(height, width) as displayed (EXIF rotation applied) and whether it is grayscale,
    read without decoding the pixels."""
    from PIL import Image

    with Image.open(path) as image:
        width, height = image.size
        if image.getexif().get(EXIF_ORIENTATION, 1) in ROTATED_ORIENTATIONS:
            width, height = height, width
        return (height, width), image.mode in GRAY_MODES


def _pixels(path: Path, size: tuple[int, int], gray: bool) -> np.ndarray:
    """One image as uint8 CHW of `size` (height, width), grayscale or RGB."""
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        image.draft("L" if gray else "RGB", (max(size), max(size)))  # JPEG: decode smaller
        image = ImageOps.exif_transpose(image)
        if image.mode.startswith("I;16"):  # 16-bit grayscale: keep the top 8 bits' worth
            image = Image.fromarray((np.asarray(image, dtype=np.uint32) // 257).astype(np.uint8))
        mode = "L" if gray else "RGB"
        if image.mode != mode:
            image = image.convert(mode)
        if image.size != (size[1], size[0]):
            image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        pixels = np.asarray(image)
    return pixels[None] if gray else pixels.transpose(2, 0, 1)


def _in_threads(work: Callable[[int], None], count: int, what: str, progress: bool) -> None:
    """work(0), ..., work(count - 1) on threads, since Pillow reads, decodes and resizes with
    the GIL released; a progress bar appears when it takes over 2 s."""
    from tqdm.auto import tqdm

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        done = pool.map(work, range(count))
        for _ in tqdm(done, total=count, desc=what, unit="image", delay=2, disable=not progress):
            pass


def _decode(
    root: Path, files: list[_ImageFile], image_size: int | None, progress: bool
) -> _Decoded:
    """Decode every file to one size and channel count; a file Pillow cannot read (whatever
    it raises) is recorded as a problem, never raised."""
    from PIL import Image

    with warnings.catch_warnings():  # a large photo is decoded and resized like any other; its
        # DecompressionBombWarning would be two raw lines per file on stderr
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return _decode_files(root, files, image_size, progress)


def _decode_files(
    root: Path, files: list[_ImageFile], image_size: int | None, progress: bool
) -> _Decoded:
    problems: dict[int, str] = {}
    headers: dict[int, tuple[tuple[int, int], bool]] = {}

    def scan(index: int) -> None:
        try:
            headers[index] = _header(files[index].path)
        except Exception as err:  # noqa: BLE001 - any unreadable file is skipped, not fatal
            problems[index] = error_reason(err)

    _in_threads(scan, len(files), "scan", progress)
    rows = sorted(headers)
    sizes = {size for size, _ in headers.values()}
    if image_size is not None:
        size = (image_size, image_size)
    else:
        size = sizes.pop() if len(sizes) == 1 else (MIXED_SIZES_SIDE, MIXED_SIZES_SIDE)
    gray = bool(headers) and all(is_gray for _, is_gray in headers.values())
    shape = (len(rows), 1 if gray else 3, *size)
    _check_fits_memory(root, shape, image_size)
    pixels = np.zeros(shape, dtype=np.uint8)
    filled = np.zeros(len(rows), dtype=bool)

    def decode(row: int) -> None:
        try:
            pixels[row] = _pixels(files[rows[row]].path, size, gray)
            filled[row] = True
        except Exception as err:  # noqa: BLE001 - any unreadable file is skipped, not fatal
            problems[rows[row]] = error_reason(err)

    _in_threads(decode, len(rows), "decode", progress)
    readable = np.zeros(len(files), dtype=bool)
    readable[rows] = filled
    listed = [
        f"{files[index].path.relative_to(root)}: {reason}"
        for index, reason in sorted(problems.items())
    ]
    return _Decoded(pixels if filled.all() else pixels[filled], readable, listed)


def _check_fits_memory(root: Path, shape: tuple[int, ...], image_size: int | None) -> None:
    """Refuse, from the headers alone, pixels that would not fit in memory: a folder of large
    photos kept at full size filled it while decoding and got the process killed."""
    from nasbox.cpu import check_fits_memory

    count, _, height, width = shape
    fix = (
        "a smaller --image-size"
        if image_size is not None
        else f"--image-size {MIXED_SIZES_SIDE} (or another size)"
    )
    check_fits_memory(
        math.prod(shape),
        f"{root}: decoding {count:,} images of {height}x{width} pixels",
        f"pass {fix} to resize them as they are read",
    )


def _held_out(labels: np.ndarray, seed: int) -> np.ndarray:
    """A seeded TEST_FRACTION of each class, as a boolean mask."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        test[members[: int(len(members) * TEST_FRACTION)]] = True
    return test


def _assemble(
    root: Path, files: list[_ImageFile], classes: list[str], decoded: _Decoded, split_seed: int
) -> tuple[ImageData, list[str], bool]:
    """The ImageData of the readable files, the class folders left out for want of a
    readable training image, and whether the test split came from a test folder."""
    readable = [file for file, ok in zip(files, decoded.readable, strict=True) if ok]
    if not readable:
        raise NasboxError(
            f"{root}: none of the {len(files)} image files could be read (e.g. "
            f"{decoded.problems[0]}); check that they are images Pillow can open"
        )
    trained = {file.label for file in readable if not file.test}
    kept = [name for name in classes if name in trained]
    left_out = [name for name in classes if name not in trained]
    if len(kept) < 2:
        which = f"only the class {kept[0]!r} has" if kept else "no class has"
        unread = f", {len(decoded.problems)} could not be read, e.g. {decoded.problems[0]}"
        raise NasboxError(
            f"{root}: {which} a readable training image (of {len(files)} image files"
            f"{unread if decoded.problems else ''}); a classifier needs at least 2 classes, "
            "each in its own folder with readable images"
        )
    index = {name: number for number, name in enumerate(kept)}
    use = np.array([file.label in index for file in readable])
    labels = np.array([index.get(file.label, -1) for file in readable], dtype=np.int64)[use]
    pixels = decoded.pixels[use]
    test = np.array([file.test for file in readable])[use]
    split_given = test.any()
    if not split_given:
        test = _held_out(labels, split_seed)
    check_not_constant(pixels[~test], f"{root}: every pixel of every training image")
    data = ImageData(
        root.resolve().name,
        pixels[~test],
        labels[~test],
        pixels[test] if test.any() else None,
        labels[test] if test.any() else None,
        classes=tuple(kept),
    )
    return data, left_out, bool(split_given)


def _report(
    root: Path,
    data: ImageData,
    problems: list[str],
    left_out: list[str],
    split_given: bool,
    origin: str,
    image_size: int | None,
) -> None:
    """One note line (classes by index, sizes, where the cache is); one warning line when
    files or classes were left out; one note line when large images keep their size."""
    if problems or left_out:
        parts = []
        if problems:
            parts.append(f"skipped {len(problems)} unreadable image file(s) (first: {problems[0]})")
        if left_out:
            parts.append(
                "left out class folder(s) without a readable training image: " + ", ".join(left_out)
            )
        _print_line(f"nasbox: warning: {root}: {'; '.join(parts)}")
    shown = " ".join(f"{number}={name}" for number, name in enumerate(data.classes[:CLASSES_SHOWN]))
    if len(data.classes) > CLASSES_SHOWN:
        shown += f" ... ({len(data.classes) - CLASSES_SHOWN} more)"
    tests = 0 if data.y_test is None else len(data.y_test)
    if split_given:
        split = "test folder"
    elif tests:
        split = f"{TEST_FRACTION:.0%} of each class held out"
    else:
        split = f"no class has the {round(1 / TEST_FRACTION)} images to hold one out"
    height, width = data.image_size
    _print_line(
        f"nasbox: note: {root}: classes {shown}; {len(data.y_train)} train, {tests} test "
        f"images ({split}); {data.in_channels}x{height}x{width}; {origin}"
    )
    if image_size is None and max(height, width) > LARGE_IMAGE_SIDE:
        _print_line(
            f"nasbox: note: {root}: the images keep their {height}x{width} pixels (they share one "
            "size and --image-size is not given), on which networks train very slowly or run out "
            f"of memory; pass --image-size {MIXED_SIZES_SIDE} (or another size) to resize them"
        )


def _print_line(text: str) -> None:
    """On stderr as one line, whatever line breaks file or folder names carry."""
    print(text.replace("\r", "\\r").replace("\n", "\\n"), file=sys.stderr)
