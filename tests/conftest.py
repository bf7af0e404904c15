from pathlib import Path

import numpy as np
import pytest
import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# 20 lines of a small language: enough characters for a few 8-stream x 10-step batches.
TEXT_CORPUS = "".join(f"the cat {w} the dog {n}\n" for n in range(10) for w in ("saw", "bit"))


@pytest.fixture(autouse=True)
def _deterministic_threads():
    torch.set_num_threads(2)


@pytest.fixture
def tiny_npz(tmp_path: Path) -> Path:
    """A 40-image, 3-channel, 8x8 data set in NHWC layout."""
    rng = np.random.default_rng(0)
    path = tmp_path / "tiny.npz"
    np.savez(
        path,
        x_train=rng.integers(0, 256, size=(40, 8, 8, 3), dtype=np.uint8),
        y_train=rng.integers(0, 4, size=40),
        x_test=rng.integers(0, 256, size=(10, 8, 8, 3), dtype=np.uint8),
        y_test=rng.integers(0, 4, size=10),
    )
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """TEXT_CORPUS in a file, for `--data text:FILE`."""
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT_CORPUS)
    return path


def shared_file(name: str) -> Path:
    path = SHARED / name
    if not path.is_file():
        pytest.skip(f"reference data {path} is absent (../shared is not beside the checkout)")
    return path
