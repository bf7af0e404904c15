"""Data sets for scoring and training architectures."""

from nasbox.data.folder import load_folder
from nasbox.data.images import (
    DATA_SOURCES,
    ImageData,
    load_cifar10,
    load_data,
    load_digits,
    load_npz,
)

__all__ = [
    "DATA_SOURCES",
    "ImageData",
    "load_cifar10",
    "load_data",
    "load_digits",
    "load_folder",
    "load_npz",
]
