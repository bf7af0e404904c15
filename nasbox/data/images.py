"""Image classification data sets, held as uint8 NCHW arrays and normalised per channel on use.

Sources: scikit-learn's bundled digits (no download), the CIFAR-10 python batches from a folder,
any `.npz` file with `x_train`, `y_train` (and optionally `x_test`, `y_test`), or a folder of
images in one folder per class (`nasbox.data.folder`).
"""

import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from nasbox.checks import check_path, check_text
from nasbox.errors import NasboxError, error_reason, note

# The smallest image side the networks are built for (the bundled digits' 8x8): on smaller images
# their 3x3 convolutions and pools see mostly padding, so scores and accuracies mean nothing.
MIN_IMAGE_SIDE = 8
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
# (what --data takes, what it loads, what loading costs), as `nasbox list` and --help show them
DATA_SOURCES = (
    ("digits", "scikit-learn's bundled 8x8 digits, 1 channel, 10 classes", "instant (bundled)"),
    ("cifar10", "the CIFAR-10 python batches in --data-dir", "seconds to load"),
    (
        "npz:FILE",
        "arrays x_train, y_train and optionally x_test, y_test (uint8, NCHW or NHWC)",
        "as long as reading the file",
    ),
    (
        "folder:DIR",
        "images in DIR/<class>/ or DIR/train/<class>/ + DIR/test/<class>/ (--image-size N)",
        "decoding every image once, then reading a cache",
    ),
    (
        "text:FILE",
        "a UTF-8 text corpus for language models (--space rnn), read as characters "
        "(nasbox train --tokens word reads words)",
        "reading and tokenizing the file",
    ),
)


def channel_statistics(
    images: np.ndarray, chunk_pixels: int = 1 << 22
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 NCHW images scaled to [0, 1].

    From each channel's histogram of its 256 values, counted a few million pixels at a time:
    exact, and a large data set needs no float copy of every image.
    """
    channels = images.shape[1]
    counts = np.zeros((channels, 256), dtype=np.int64)
    step = max(1, chunk_pixels // images[0].size)
    for start in range(0, len(images), step):
        part = images[start : start + step]
        for channel in range(channels):
            counts[channel] += np.bincount(part[:, channel].ravel(), minlength=256)
    values = np.arange(256) / 255.0
    total = counts.sum(axis=1)
    mean = counts @ values / total
    std = np.sqrt(np.maximum(counts @ values**2 / total - mean**2, 0.0))
    return tuple(mean.tolist()), tuple(np.maximum(std, 1e-8).tolist())


@dataclass
class ImageData:
    """Train/test images (uint8, NCHW) with labels and the per-channel statistics to normalise."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    mean: tuple[float, ...] = field(default=())
    std: tuple[float, ...] = field(default=())
    classes: tuple[str, ...] = field(default=())  # class names by label, where the source has them

    def __post_init__(self) -> None:
        self._check_labels()
        if not self.mean:
            self.mean, self.std = channel_statistics(self.x_train)

    def _check_labels(self) -> None:
        """Labels are class indices 0..K-1, with K from the training labels, at least 2 and at
        most one class per training image; a test label the training set never shows is an
        error."""
        if len(self.y_train) == 0:
            raise NasboxError(f"data set {self.name!r} has no training images")
        for key, labels in (("y_train", self.y_train), ("y_test", self.y_test)):
            if labels is not None and len(labels) and int(labels.min()) < 0:
                raise NasboxError(
                    f"data set {self.name!r}: {key} holds label {int(labels.min())}; labels must "
                    "be class indices 0..K-1"
                )
        largest = int(self.y_train.max())
        if int(self.y_train.min()) == largest:  # accuracy would be 100% whatever the network
            raise NasboxError(
                f"data set {self.name!r}: every y_train label is {largest}; a classifier needs "
                "at least 2 classes"
            )
        if largest >= len(self.y_train):
            raise NasboxError(
                f"data set {self.name!r}: y_train holds label {largest} but there are only "
                f"{len(self.y_train)} training images; labels must be class indices 0..K-1"
            )
        unseen = np.setdiff1d(self.y_test, self.y_train) if self.y_test is not None else []
        if len(unseen):  # within 0..largest too: y_train 0 and 2 with y_test 1
            raise NasboxError(
                f"data set {self.name!r}: y_test holds label {int(unseen[-1])}, a class no "
                f"training image has (y_train holds {len(np.unique(self.y_train))} of the labels "
                f"0..{largest}); give every test class training images"
            )

    @property
    def in_channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.x_train.shape[2]), int(self.x_train.shape[3])

    @property
    def num_classes(self) -> int:
        return int(self.y_train.max()) + 1

    def normalize(self, images: np.ndarray) -> torch.Tensor:
        """uint8 NCHW images -> float32 tensor with zero mean and unit variance per channel."""
        x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, -1, 1, 1)
        return x.sub_(mean).div_(std)

    def split_validation(self, fraction: float, seed: int) -> "ImageData":
        """Hold out a seeded `fraction` of each class of the training images as the test split,
        so a search can score candidates without ever looking at the real test images."""
        rng = np.random.default_rng(seed)
        held = []
        for label in np.unique(self.y_train):
            members = rng.permutation(np.flatnonzero(self.y_train == label))
            held.extend(members[: int(len(members) * fraction)].tolist())
        if not held or len(held) > len(self.y_train) - 2:
            raise NasboxError(
                f"data set {self.name!r}: {len(self.y_train)} training images are too few to "
                f"hold out {fraction:.0%} of each class for validation"
            )
        keep = np.ones(len(self.y_train), dtype=bool)
        keep[held] = False
        held = np.sort(held)
        return ImageData(
            f"{self.name}-validation",
            self.x_train[keep],
            self.y_train[keep],
            self.x_train[held],
            self.y_train[held],
            mean=self.mean,
            std=self.std,
            classes=self.classes,
        )

    def batch(self, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A seeded random minibatch of distinct normalised training images and their labels.

        Two copies of one image (a file saved twice) make NASWOT's kernel singular, -inf for
        every architecture: a copy drawn is replaced by another image, with a note. Without
        copies the batch is the plain seeded draw."""
        if size < 2:
            raise NasboxError(f"batch size must be at least 2, got {size}")
        rng = np.random.default_rng(seed)
        size = min(size, len(self.x_train))
        drawn = rng.choice(len(self.x_train), size=size, replace=False)
        index = np.sort(self._distinct(drawn, rng))
        return self.normalize(self.x_train[index]), torch.from_numpy(self.y_train[index]).long()

    def _distinct(self, drawn: np.ndarray, rng: np.random.Generator) -> list[int]:
        """`drawn` less the copies of images drawn before them, made up from the other images in
        a seeded order while distinct ones remain."""
        seen: set[bytes] = set()

        def new(index: int) -> bool:
            pixels = self.x_train[index].tobytes()
            fresh = pixels not in seen
            seen.add(pixels)
            return fresh

        chosen = [int(index) for index in drawn if new(index)]
        if len(chosen) == len(drawn):
            return chosen
        copies = len(drawn) - len(chosen)
        for index in rng.permutation(np.setdiff1d(np.arange(len(self.x_train)), drawn)):
            if len(chosen) == len(drawn):
                break
            if new(index):
                chosen.append(int(index))
        short = (
            f"; only {len(chosen)} training images are distinct, so it holds those"
            if len(chosen) < len(drawn)
            else ""
        )
        note(
            f"data set {self.name!r}: the minibatch of {len(drawn)} images drew {copies} "
            f"cop{'y' if copies == 1 else 'ies'} of images already in it (identical pixels make "
            f"NASWOT's kernel singular); other images took their place{short}"
        )
        return chosen


def load_data(
    spec: str = "digits", data_dir: str | Path | None = None, image_size: int | None = None
) -> ImageData:
    """Load a data set by its CLI name: `digits`, `cifar10` (with `data_dir`), `npz:FILE` or
    `folder:DIR`; only folder images are decoded, so only they take `image_size`."""
    names = ", ".join(name for name, _, _ in DATA_SOURCES)
    check_text(spec, "load_data", "spec", f"pass one of: {names}")
    check_data_dir(spec, data_dir)
    if spec.startswith("text:"):
        raise NasboxError(
            f"--data {spec} is a text corpus for language models (--space rnn); image networks "
            "need images"
        )
    if spec.startswith("folder:"):
        from nasbox.data.folder import load_folder

        if spec == "folder:":
            raise NasboxError("--data folder: needs a folder, e.g. --data folder:photos")
        return load_folder(spec.removeprefix("folder:"), image_size)
    if image_size is not None:
        raise NasboxError(
            f"--image-size resizes the images of --data folder:DIR only; {spec} images keep "
            "their size, so leave --image-size out"
        )
    if spec == "digits":
        return load_digits()
    if spec == "cifar10":
        if data_dir is None:
            raise NasboxError(
                "--data cifar10 needs --data-dir DIR, the folder with the CIFAR-10 python batches"
            )
        return load_cifar10(data_dir)
    if spec.startswith("npz:"):
        if spec == "npz:":
            raise NasboxError("--data npz: needs a file, e.g. --data npz:images.npz")
        return load_npz(spec.removeprefix("npz:"))
    raise NasboxError(f"unknown data set {spec!r}; use one of: {names}")


def check_data_dir(spec: str, data_dir: str | Path | None) -> None:
    """--data-dir names where the CIFAR-10 batches are; with other data it would be ignored."""
    if data_dir is not None and spec != "cifar10":
        raise NasboxError(
            f"--data-dir is read only with --data cifar10; --data {spec} does not use it, so "
            "leave --data-dir out"
        )


def load_digits(test_fraction: float = 0.2) -> ImageData:
    """scikit-learn's 8x8 digits (values 0..16) scaled to uint8; the last 20% is the test split."""
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    labels = digits.target.astype(np.int64)
    cut = int(len(images) * (1 - test_fraction))
    return ImageData("digits", images[:cut], labels[:cut], images[cut:], labels[cut:])


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only, so a data file cannot run code."""

    _allowed = {
        (module, name)
        for module in ("numpy.core.multiarray", "numpy._core.multiarray")
        for name in ("_reconstruct", "scalar")
    } | {("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):
        if (module, name) in self._allowed:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def check_not_constant(images: np.ndarray, pixels: str) -> None:
    """Training images that are all one value carry nothing to learn or score; `pixels` says
    which, e.g. "data.npz: every pixel of x_train"."""
    if images.min() == images.max():
        raise NasboxError(
            f"{pixels} is {images.min()}; constant images carry nothing to learn or score"
        )


def check_image_side(images: np.ndarray, what: str, fix: str) -> None:
    """Refuse NCHW `images` below MIN_IMAGE_SIDE; `what` names them (e.g. "data.npz: x_train
    has shape (4, 3, 1, 1), images"), `fix` says how to give larger ones."""
    if min(images.shape[2:]) < MIN_IMAGE_SIDE:
        side = MIN_IMAGE_SIDE
        raise NasboxError(
            f"{what} smaller than {side}x{side} pixels, the smallest the networks are built for; "
            f"{fix}"
        )


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise NasboxError(f"{path}: file not found (expected a CIFAR-10 python batch)")
    try:
        with path.open("rb") as handle:
            batch = _ArraysOnlyUnpickler(handle, encoding="bytes").load()
        if not isinstance(batch, dict):
            raise TypeError(f"holds a {type(batch).__name__}, not a dict of data and labels")
        data = np.asarray(batch[b"data"])
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (  # a damaged pickle can raise nearly anything while it is read
        pickle.UnpicklingError,
        AttributeError,
        EOFError,
        LookupError,
        MemoryError,
        OverflowError,
        TypeError,
        ValueError,
    ) as err:
        raise NasboxError(f"{path}: not a CIFAR-10 python batch ({error_reason(err)})") from None
    if data.dtype != np.uint8:
        raise NasboxError(
            f"{path}: pixels must be uint8 (0..255) as in the CIFAR-10 python batches, found "
            f"dtype {data.dtype}"
        )
    if labels.ndim != 1:
        raise NasboxError(f"{path}: labels must be a flat list, found shape {labels.shape}")
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise NasboxError(
            f"{path}: expected {len(labels)} rows of 3072 pixels, found shape {data.shape}"
        )
    if len(data) == 0:
        raise NasboxError(f"{path}: holds no images; each CIFAR-10 batch needs at least one")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar10(data_dir: str | Path) -> ImageData:
    """The standard `cifar-10-batches-py` folder: data_batch_1..5 and test_batch."""
    folder = check_path(data_dir, "load_cifar10", "data_dir")
    if (folder / "cifar-10-batches-py").is_dir():
        folder = folder / "cifar-10-batches-py"
    if not folder.is_dir():
        problem = "a file, not a folder" if folder.exists() else "folder not found"
        raise NasboxError(
            f"{folder}: {problem}; --data-dir takes the folder with the CIFAR-10 python batches "
            "(data_batch_1..5, test_batch)"
        )
    train = [_read_cifar_batch(folder / f"data_batch_{i}") for i in range(1, 6)]
    x_test, y_test = _read_cifar_batch(folder / "test_batch")
    x_train = np.concatenate([x for x, _ in train])
    check_not_constant(x_train, f"{folder}: every pixel of the training batches")
    return ImageData(
        "cifar10",
        x_train,
        np.concatenate([y for _, y in train]),
        x_test,
        y_test,
        mean=CIFAR10_MEAN,
        std=CIFAR10_STD,
    )


def _to_nchw(images: np.ndarray, path: Path, key: str) -> np.ndarray:
    if images.dtype != np.uint8:
        scale = " * 255" if images.dtype.kind == "f" else ""  # floats are mostly 0..1 pixels
        raise NasboxError(
            f"{path}: {key} must be uint8 images (0..255), found dtype {images.dtype}; save "
            f"{key}=np.round(x{scale}).clip(0, 255).astype(np.uint8)"
        )
    if images.ndim in (3, 4) and 0 in images.shape[1:]:
        raise NasboxError(
            f"{path}: {key} has shape {images.shape}, images without pixels; each image needs "
            f"at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} pixels"
        )
    if images.ndim == 3:
        return images[:, None]
    if images.ndim != 4:
        raise NasboxError(
            f"{path}: {key} must have shape (N, C, H, W) or (N, H, W, C), found {images.shape}"
        )
    if images.shape[1] in (1, 3) and images.shape[3] not in (1, 3):
        return images
    if images.shape[3] in (1, 3):
        return np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    raise NasboxError(
        f"{path}: {key} has shape {images.shape}; cannot tell the channel axis (1 or 3 channels)"
    )


def _labels(values: np.ndarray, count: int, path: Path, key: str) -> np.ndarray:
    if values.ndim != 1 or len(values) != count:
        raise NasboxError(f"{path}: {key} must hold {count} labels, found shape {values.shape}")
    if not np.issubdtype(values.dtype, np.integer) or (len(values) and values.min() < 0):
        raise NasboxError(f"{path}: {key} must be non-negative integer class labels")
    if len(values) and values.max() > np.iinfo(np.int64).max:  # uint64 would wrap negative
        raise NasboxError(
            f"{path}: {key} holds label {values.max()}; labels must be class indices 0..K-1"
        )
    return values.astype(np.int64)


# What an .npz for nasbox holds, and how to write one.
SAVEZ = (
    "save x_train, y_train (and optionally x_test, y_test) with "
    "numpy.savez(FILE, x_train=..., y_train=..., x_test=..., y_test=...)"
)
# How the files numpy.load reads begin: a zip archive (.npz; an empty one has only its end
# record) or a single .npy array. numpy reads anything else as a pickle.
NPZ_STARTS = (b"PK\x03\x04", b"PK\x05\x06")
NPY_START = b"\x93NUMPY"


def _check_npz_start(path: Path) -> None:
    """Refuse a file that is not an .npz by its first bytes, before numpy reads a text file as a
    pickle (its error then suggests loading it unsafely) or an .npy of objects."""
    try:
        with path.open("rb") as handle:
            start = handle.read(len(NPY_START))
    except OSError as err:
        raise NasboxError(f"{path}: cannot read the file ({error_reason(err)})") from None
    if not start:
        raise NasboxError(f"{path}: the file is empty, not an .npz archive; {SAVEZ}")
    if start == NPY_START:
        raise NasboxError(f"{path}: a single .npy array, not an .npz archive; {SAVEZ}")
    if not start.startswith(NPZ_STARTS):
        raise NasboxError(f"{path}: not an .npz archive (a numpy.savez zip file); {SAVEZ}")


def load_npz(file: str | Path) -> ImageData:
    """Arrays `x_train`, `y_train` and optionally `x_test`, `y_test` (uint8, NCHW or NHWC)."""
    path = check_path(file, "load_npz", "file")
    if path.is_dir():
        raise NasboxError(
            f"{path}: is a folder, not an .npz file; give the file (npz:FILE), or "
            f"folder:{path} for a folder of images in one subfolder per class"
        )
    if not path.is_file():
        raise NasboxError(f"{path}: file not found")
    _check_npz_start(path)
    key = None
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {}
            for key in archive.files:
                arrays[key] = archive[key]
    except ValueError as err:
        if key is not None and "allow_pickle" in str(err):  # numpy's words for object arrays
            raise NasboxError(
                f"{path}: {key} holds Python objects (pickled), which are not loaded; "
                "save numeric arrays: uint8 images and integer labels"
            ) from None
        raise NasboxError(f"{path}: not a readable .npz file ({error_reason(err)})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        raise NasboxError(f"{path}: not a readable .npz file ({error_reason(err)})") from None
    missing = [key for key in ("x_train", "y_train") if key not in arrays]
    if missing:
        raise NasboxError(
            f"{path}: missing array(s) {', '.join(missing)}; found {', '.join(arrays) or 'none'}"
        )
    used = [key for key in ("x_train", "y_train", "x_test", "y_test") if key in arrays]
    raw = [key for key in used if not isinstance(arrays[key], np.ndarray)]
    if raw:  # numpy hands a zip member not saved as .npy back as its bytes
        raise NasboxError(
            f"{path}: {', '.join(raw)} not saved as .npy array(s) (a zip of other files); {SAVEZ}"
        )
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise NasboxError(f"{path}: give both x_test and y_test, or neither")
    x_train = _to_nchw(arrays["x_train"], path, "x_train")
    check_image_side(
        x_train,
        f"{path}: x_train has shape {arrays['x_train'].shape}, images",
        f"save images of at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} pixels",
    )
    y_train = _labels(arrays["y_train"], len(x_train), path, "y_train")
    if len(x_train) < 2:
        raise NasboxError(f"{path}: x_train needs at least 2 images, found {len(x_train)}")
    x_test = y_test = None
    if "x_test" in arrays:
        x_test = _to_nchw(arrays["x_test"], path, "x_test")
        if len(x_test) == 0:
            raise NasboxError(f"{path}: x_test holds no images; give at least one or leave it out")
        y_test = _labels(arrays["y_test"], len(x_test), path, "y_test")
        if x_test.shape[1:] != x_train.shape[1:]:
            raise NasboxError(
                f"{path}: x_test images are {x_test.shape[1:]} but x_train images are "
                f"{x_train.shape[1:]}"
            )
    check_not_constant(x_train, f"{path}: every pixel of x_train")
    return ImageData(path.stem, x_train, y_train, x_test, y_test)
