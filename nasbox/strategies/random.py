"""Random search: sample distinct architectures uniformly, keep the best (NASWOT's Algorithm 1)."""

from collections.abc import Hashable

from nasbox.strategies.base import Strategy


class RandomSearch(Strategy):
    """Uniform samples without repeats, so no evaluation is spent twice on the same cell."""

    name = "random"
    multi_objective = True  # values are never compared, so any number of objectives will do

    def ask(self) -> Hashable:
        return self._propose(self._unseen_sample())
