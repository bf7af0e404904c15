"""Search strategies: how to search, as ask/tell objects. Create one by name with `get_strategy`."""

import inspect

from nasbox.errors import NasboxError
from nasbox.registry import Registry
from nasbox.spaces import SearchSpace
from nasbox.strategies.base import Strategy
from nasbox.strategies.controller import ControllerStrategy, PPOController, ReinforceController
from nasbox.strategies.evolution import AssistedEvolution, BatchScorer, RegularizedEvolution
from nasbox.strategies.nsga2 import NSGA2
from nasbox.strategies.petri_evolution import PetriEvolution
from nasbox.strategies.random import RandomSearch
from nasbox.strategies.reinforce import Reinforce

STRATEGIES: Registry[Strategy] = Registry("strategy")
STRATEGIES.register("random")(RandomSearch)
STRATEGIES.register("evolution")(RegularizedEvolution)
STRATEGIES.register("area")(AssistedEvolution)
STRATEGIES.register("reinforce")(Reinforce)
STRATEGIES.register("ppo")(PPOController)
STRATEGIES.register("lstm-reinforce")(ReinforceController)
STRATEGIES.register("petri-evolution")(PetriEvolution)
STRATEGIES.register("nsga2")(NSGA2)


def get_strategy(name: str, space: SearchSpace, seed: int = 0, **options) -> Strategy:
    """Strategy `name` on `space`; `options` are its constructor's other keyword arguments
    (an unknown one is named with those it takes, not a TypeError about __init__)."""
    factory = STRATEGIES.get(name)
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a plugin's factory without a signature: let it check
        parameters = {}
    if parameters and not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        takes = [key for key in parameters if key not in ("self", "space", "seed")]
        for key in options:
            if key not in takes:
                known = f"its options: {', '.join(takes)}" if takes else "it takes none"
                raise NasboxError(f"{name} takes no option {key!r}; {known}")
    return factory(space=space, seed=seed, **options)


def uses_prescore(name: str) -> bool:
    """Whether strategy `name` takes a training-free `prescore` estimator (AREA does)."""
    return getattr(STRATEGIES.get(name), "uses_prescore", False)


__all__ = [
    "NSGA2",
    "STRATEGIES",
    "AssistedEvolution",
    "BatchScorer",
    "ControllerStrategy",
    "PPOController",
    "PetriEvolution",
    "RandomSearch",
    "RegularizedEvolution",
    "Reinforce",
    "ReinforceController",
    "Strategy",
    "get_strategy",
    "uses_prescore",
]
