"""Reading the files nasbox writes with `torch.save` (training checkpoints, petri dishes).

They hold only tensors and plain data, so they are loaded with `weights_only`: a planted file
cannot run code, and every reader refuses one that tries in the same words.
"""

import pickle
import warnings
from pathlib import Path

import torch

# How torch's `weights_only` loading begins its error for an object it does not allow, and
# also for bytes it cannot read as a pickle at all (random bytes, or Python's own pickle format).
UNSAFE_PICKLE = "Weights only load failed"
NOT_A_PICKLE = "Unsupported operand"


def load_tensors(path: Path):
    """`torch.load` of tensors and plain data only, onto the CPU. Torch's warning about a bare
    pickle's protocol is silenced: the error that follows says what matters, in one line."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(path, map_location="cpu", weights_only=True)


def load_failure(error: BaseException) -> str:
    """Why `load_tensors` failed, to quote in one line: refused objects, or a damaged or foreign
    file and the error's type (torch's own messages run to several paragraphs)."""
    text = str(error)
    if (
        isinstance(error, pickle.UnpicklingError)
        and text.startswith(UNSAFE_PICKLE)
        and NOT_A_PICKLE not in text
    ):
        return "it pickles Python objects, which could run code and were not loaded"
    return f"damaged, or not written by torch.save: {type(error).__name__}"
