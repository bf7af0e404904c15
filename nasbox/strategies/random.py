"""Random search: sample distinct architectures uniformly, keep the best (NASWOT's Algorithm 1)."""

from collections.abc import Hashable

from nasbox.errors import NasboxError
from nasbox.spaces import SearchSpace
from nasbox.strategies.base import Strategy


class RandomSearch(Strategy):
    """Uniform samples without repeats, so no evaluation is spent twice on the same cell."""

    name = "random"

    def __init__(self, space: SearchSpace, seed: int = 0) -> None:
        super().__init__(space, seed)
        self._proposed: set[Hashable] = set()

    def ask(self) -> Hashable:
        if len(self._proposed) >= len(self.space):
            raise NasboxError(
                f"random search has proposed all {len(self.space)} architectures of the space"
            )
        while True:
            arch = self.space.sample(self.rng)
            if arch not in self._proposed:
                self._proposed.add(arch)
                return arch
