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
from nasbox.data.text import TextData, load_text, load_text_source

__all__ = [
    "DATA_SOURCES",
    "ImageData",
    "TextData",
    "load_cifar10",
    "load_data",
    "load_digits",
    "load_folder",
    "load_npz",
    "load_text",
    "load_text_source",
]
