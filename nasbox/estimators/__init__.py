"""Estimators: how good an architecture is. Create one by name with `get_estimator`.

A name may carry an argument after a colon (`table:valid_acc`); the factory receives it.
"""

from nasbox.errors import NasboxError
from nasbox.estimators.activation import Meco, Swap, SwapRegularised, Zen
from nasbox.estimators.base import Estimator, EstimatorContext
from nasbox.estimators.cost import MultiplyAdds, Parameters
from nasbox.estimators.ensemble import Ensemble
from nasbox.estimators.jacov import JacobianCovariance
from nasbox.estimators.language import LanguageModelEstimator
from nasbox.estimators.latency import Latency
from nasbox.estimators.naswot import NASWOT
from nasbox.estimators.petri.estimator import PetriEstimator
from nasbox.estimators.table import TableLookup
from nasbox.estimators.training import TrainingEstimator
from nasbox.estimators.zero_cost import (
    EpeNas,
    Fisher,
    GradNorm,
    Grasp,
    L2Norm,
    Snip,
    Synflow,
    Zico,
)
from nasbox.registry import Registry
from nasbox.spaces import SPACES

ESTIMATORS: Registry[Estimator] = Registry("estimator")
for _cls in (
    NASWOT,
    JacobianCovariance,
    Parameters,
    MultiplyAdds,
    Latency,
    TableLookup,
    PetriEstimator,
    TrainingEstimator,
    LanguageModelEstimator,
    Synflow,
    Snip,
    Grasp,
    Fisher,
    GradNorm,
    L2Norm,
    EpeNas,
    Zen,
    Zico,
    Meco,
    Swap,
    SwapRegularised,
    Ensemble,
):
    ESTIMATORS.register(_cls.name)(_cls)


def get_estimator(spec: str, context: EstimatorContext) -> Estimator:
    """Create the estimator `spec` (`name` or `name:argument`) for `context`.

    A spec that is not a string, another object as context, or an estimator of image networks
    for a space of language models (or the reverse) failed inside with an AttributeError or a
    torch error at the first score; each is one line here."""
    if not isinstance(spec, str):
        raise NasboxError(
            f"get_estimator needs a name such as 'naswot' or 'table:valid_acc', got "
            f"{type(spec).__name__}"
        )
    if not isinstance(context, EstimatorContext):
        raise NasboxError(
            f"get_estimator needs an EstimatorContext, got {type(context).__name__}: pass "
            "EstimatorContext(space, data)"
        )
    name, colon, argument = spec.strip().partition(":")
    factory = ESTIMATORS.get(name)
    space = context.space
    if factory.modality not in (None, space.modality):
        spaces = [
            other for other in SPACES.names() if SPACES.get(other).modality == factory.modality
        ]
        raise NasboxError(
            f"estimator {name!r} scores {factory.modality} networks and space {space.name} "
            f"builds {space.modality} networks; use it with space {' or '.join(spaces)}"
        )
    return factory.from_spec(context, argument if colon else None)


__all__ = [
    "ESTIMATORS",
    "Ensemble",
    "Estimator",
    "EstimatorContext",
    "JacobianCovariance",
    "Latency",
    "MultiplyAdds",
    "NASWOT",
    "Parameters",
    "TableLookup",
    "TrainingEstimator",
    "PetriEstimator",
    "get_estimator",
]
