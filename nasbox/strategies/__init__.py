"""Search strategies: how to search, as ask/tell objects. Create one by name with `get_strategy`."""

from nasbox.registry import Registry
from nasbox.spaces import SearchSpace
from nasbox.strategies.base import Strategy
from nasbox.strategies.petri_evolution import PetriEvolution
from nasbox.strategies.random import RandomSearch

STRATEGIES: Registry[Strategy] = Registry("strategy")
STRATEGIES.register("random")(RandomSearch)
STRATEGIES.register("petri-evolution")(PetriEvolution)


def get_strategy(name: str, space: SearchSpace, seed: int = 0, **options) -> Strategy:
    return STRATEGIES.create(name, space=space, seed=seed, **options)


__all__ = ["STRATEGIES", "PetriEvolution", "RandomSearch", "Strategy", "get_strategy"]
