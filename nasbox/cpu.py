"""The machine's CPU and memory: process-wide settings that make tensor work faster, and the
one check that refuses work that cannot fit in memory (`check_fits_memory`)."""

import ctypes
import ctypes.util
import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from nasbox.errors import NasboxError

# mallopt parameters of glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Largest first: older glibc refuses an mmap threshold above 32 MiB.
_KEEP_BYTES = (1 << 30, 32 << 20)


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep freed blocks (up to 1 GiB) for reuse instead of returning them.

    A forward pass allocates and frees megabyte tensors hundreds of times; by default glibc
    gives each back to the kernel and the next one page-faults its memory in again (about 12,000
    faults and 20 % of the time of a NAS-Bench-201 NASWOT score here). Returns False where the C
    library has no `mallopt` (not glibc): nothing changes there.
    """
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    for size in _KEEP_BYTES:
        if mallopt(_M_MMAP_THRESHOLD, size):
            return bool(mallopt(_M_TRIM_THRESHOLD, 2 * size))
    return False


@contextmanager
def single_thread() -> Iterator[None]:
    """Run small tensors (a controller's, a 64-unit recurrent cell's) on one thread: they gain
    nothing from more, and on a busy CPU waiting for a second thread made them about ten times
    slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def available_memory() -> int | None:
    """Bytes that can be allocated without swapping: Linux's MemAvailable, else the physical
    memory; None where the system says neither."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def gib(size: float) -> str:
    """A byte count as messages give it: `1,234.5 GiB`."""
    return f"{size / 2**30:,.1f} GiB"


def check_fits_memory(needed: int, needs: str, advice: str) -> None:
    """Refuse, before allocating anything, work of `needed` bytes that the available memory
    cannot hold: it ended in an allocation traceback, or the kernel killed the process with
    nothing saved. `needs` names the work (the subject of "needs about N GiB"), `advice` how
    to need less."""
    available = available_memory()
    if available is not None and needed > available:
        raise NasboxError(
            f"{needs} needs about {gib(needed)}, and {gib(available)} of memory is available; "
            f"{advice}"
        )
