"""Training networks: SGD with a cosine schedule, cutout, auxiliary loss and ScheduledDropPath."""

from nasbox.train.drop_path import DropPath, ScheduledDropPath
from nasbox.train.trainer import TrainConfig, augment, cutout, evaluate, train

__all__ = [
    "DropPath",
    "ScheduledDropPath",
    "TrainConfig",
    "augment",
    "cutout",
    "evaluate",
    "train",
]
