"""Estimators: how good an architecture is. Create one by name with `get_estimator`.

A name may carry an argument after a colon (`table:valid_acc`); the factory receives it.
"""

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
    """Create the estimator `spec` (`name` or `name:argument`) for `context`."""
    name, colon, argument = spec.strip().partition(":")
    return ESTIMATORS.get(name).from_spec(context, argument if colon else None)


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
