"""nasbox: neural architecture search that is fast enough for a laptop CPU."""

from nasbox.errors import NasboxError

__all__ = ["NasboxError"]
__version__ = "0.1.0"
