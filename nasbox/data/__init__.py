"""Data sets for scoring and training architectures."""

from nasbox.data.folder import load_folder
from nasbox.data.images import (
    DATA_SOURCES,
    ImageData,
    check_data_dir,
    load_cifar10,
    load_data,
    load_digits,
    load_npz,
)
from nasbox.data.text import TextData, load_text, load_text_source


def load_for(
    modality: str, spec: str, data_dir: str | None = None, image_size: int | None = None
) -> ImageData | TextData:
    """`--data` for a space whose networks read `modality` (`image` or `text`)."""
    if modality == "text":
        check_data_dir(spec, data_dir)
        return load_text_source(spec)
    return load_data(spec, data_dir, image_size)


__all__ = [
    "DATA_SOURCES",
    "ImageData",
    "TextData",
    "check_data_dir",
    "load_cifar10",
    "load_data",
    "load_digits",
    "load_folder",
    "load_for",
    "load_npz",
    "load_text",
    "load_text_source",
]
