"""Range checks for numbers a user gives, so a bad value fails with one line before any compute."""

import math
import numbers
import os
import sys
from collections.abc import Hashable, Sequence
from pathlib import Path

import numpy as np

from nasbox.errors import NasboxError, shown

MAX_SEED = 2**32 - 1
# The most items `len` and C sizes take (2**63 - 1 on 64-bit machines).
MAX_COUNT = sys.maxsize


def check_seed(seed: int, option: str = "--seed") -> int:
    """Seeds reach numpy and torch, which accept 0 .. 2**32 - 1 everywhere."""
    if not 0 <= seed <= MAX_SEED:
        raise NasboxError(f"{option} must be a whole number from 0 to {MAX_SEED}, got {seed}")
    return seed


def check_count(
    value: int, option: str, minimum: int = 1, maximum: int = MAX_COUNT, why: str = ""
) -> int:
    """`minimum` to `maximum` (`why` says why the limit, after the value). Never above
    `MAX_COUNT`: a larger count overflowed a C size (in `range` lengths and progress bars) with
    a traceback after the run had started. A value that is not a whole number (2.5, "10", True)
    is refused: Python callers pass one straight in, where it failed later or was used as is."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise NasboxError(
            f"{option} must be a whole number, got {value!r} ({type(value).__name__}): "
            f"pass an int such as {max(minimum, 1)}"
        )
    if value < minimum:
        raise NasboxError(f"{option} must be at least {minimum}, got {value}")
    if value > min(maximum, MAX_COUNT):
        reason = f": {why}" if why else ""
        raise NasboxError(
            f"{option} must be at most {min(maximum, MAX_COUNT):,}, got {value:,}{reason}"
        )
    return value


def check_rng(rng: np.random.Generator, what: str) -> np.random.Generator:
    """`rng` must be a numpy Generator (`what` says who needs it, e.g. "nb201 sample"). An int,
    None, `random.Random` or a legacy `RandomState` failed deep inside with an AttributeError
    about `integers`."""
    if not isinstance(rng, np.random.Generator):
        raise NasboxError(
            f"{what} needs rng to be a numpy Generator, got {rng!r} ({type(rng).__name__}): "
            "pass np.random.default_rng(seed)"
        )
    return rng


def check_text(
    text: str,
    what: str,
    name: str = "text",
    fix: str = "pass the architecture's string form, as format(arch) writes it",
) -> str:
    """`text` must be a string (`what` says who reads it, e.g. "nb201 parse"; `name` is the
    argument, `fix` what to pass). None or a number failed deep inside with an AttributeError
    about `strip`."""
    if not isinstance(text, str):
        raise NasboxError(
            f"{what} needs {name} to be a string, got {text!r} ({type(text).__name__}): {fix}"
        )
    return text


def check_path(path: str | os.PathLike, what: str, name: str = "path") -> Path:
    """`path` as a Path; it must be a string or path-like (`what` says who reads it, `name` is the
    argument). None or a number failed inside pathlib with a TypeError."""
    if not isinstance(path, str | os.PathLike):
        raise NasboxError(
            f"{what} needs {name} to be a path (a str or Path), got {shown(path)} "
            f"({type(path).__name__})"
        )
    return Path(path)


def check_arch(arch: object, arch_type: type, what: str) -> None:
    """`arch` must be an architecture of the space (`what` says who needs it, e.g. "rnn mutate").
    Another space's architecture failed deep inside with an AttributeError, IndexError or
    ValueError, or `format` returned the other space's string as if it were this one's."""
    if not isinstance(arch, arch_type):
        raise NasboxError(
            f"{what} needs an architecture of type {arch_type.__name__}, got "
            f"{type(arch).__name__}: pass an architecture of this space (space.sample or "
            "space.parse)"
        )


def check_number(
    value: float,
    option: str,
    low: float,
    high: float,
    *,
    include_low: bool = True,
    include_high: bool = False,
) -> float:
    """`value` must be finite and inside the interval; the message prints it in math notation.
    A string or None (learning_rate="0.1" from Python) is refused, not a TypeError about `<`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise NasboxError(
            f"{option} must be a number, got {value!r} ({type(value).__name__}): pass a float"
        )
    above = value >= low if include_low else value > low
    below = value <= high if include_high else value < high
    if not (math.isfinite(value) and above and below):
        interval = f"{'[' if include_low else '('}{low:g}, {high:g}{']' if include_high else ')'}"
        raise NasboxError(f"{option} must be a number in {interval}, got {value}")
    return value


def first_repeated(values: Sequence[Hashable]) -> Hashable | None:
    """The first value that occurs a second time in `values`; None when each occurs once."""
    seen = set()
    for value in values:
        if value in seen:
            return value
        seen.add(value)
    return None


def delimiter_hint(columns: Sequence[object]) -> str:
    """Why a table has none of the columns asked for, when its header is one field holding ';'
    or tabs: the file uses another delimiter (a spreadsheet's export), which the column list
    alone does not make plain. Empty otherwise; appended to the missing-column error."""
    if len(columns) != 1:
        return ""
    for mark, name in ((";", "semicolons"), ("\t", "tabs")):
        if mark in str(columns[0]):
            return (
                f"; the file seems to separate its fields with {name}, and nasbox reads "
                "comma-separated CSV: save it with commas"
            )
    return ""
