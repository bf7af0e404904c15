"""Training networks: SGD with a cosine schedule, cutout, auxiliary loss and ScheduledDropPath."""

from nasbox.train.drop_path import DropPath, ScheduledDropPath

__all__ = ["DropPath", "ScheduledDropPath"]
