"""Data sets for scoring and training architectures."""

from nasbox.data.images import ImageData, load_cifar10, load_data, load_digits, load_npz

__all__ = ["ImageData", "load_cifar10", "load_data", "load_digits", "load_npz"]
