"""Estimators: how good an architecture is. Create one by name with `get_estimator`.

A name may carry an argument after a colon (`table:valid_acc`); the factory receives it.
"""

from collections.abc import Callable

from nasbox.errors import NasboxError
from nasbox.estimators.base import Estimator, EstimatorContext
from nasbox.estimators.cost import MultiplyAdds, Parameters
from nasbox.estimators.jacov import JacobianCovariance
from nasbox.estimators.naswot import NASWOT
from nasbox.estimators.petri.estimator import PetriEstimator
from nasbox.estimators.table import TableLookup
from nasbox.registry import Registry

EstimatorFactory = Callable[[EstimatorContext, str | None], Estimator]
ESTIMATORS: Registry[Estimator] = Registry("estimator")


def _without_argument(cls: type[Estimator]) -> EstimatorFactory:
    def factory(context: EstimatorContext, argument: str | None) -> Estimator:
        if argument is not None:
            raise NasboxError(f"estimator {cls.name!r} takes no ':' argument, got {argument!r}")
        return cls(context)

    return factory


for _cls in (NASWOT, JacobianCovariance, Parameters, MultiplyAdds):
    ESTIMATORS.register(_cls.name)(_without_argument(_cls))
ESTIMATORS.register(PetriEstimator.name)(PetriEstimator)


@ESTIMATORS.register(TableLookup.name)
def _table_lookup(context: EstimatorContext, column: str | None) -> Estimator:
    if not column:
        raise NasboxError("estimator 'table' needs a column, e.g. table:valid_acc")
    return TableLookup(context, column)


def get_estimator(spec: str, context: EstimatorContext) -> Estimator:
    """Create the estimator `spec` (`name` or `name:argument`) for `context`."""
    name, colon, argument = spec.strip().partition(":")
    return ESTIMATORS.get(name)(context, argument if colon else None)


__all__ = [
    "ESTIMATORS",
    "Estimator",
    "EstimatorContext",
    "JacobianCovariance",
    "MultiplyAdds",
    "NASWOT",
    "Parameters",
    "TableLookup",
    "PetriEstimator",
    "get_estimator",
]
