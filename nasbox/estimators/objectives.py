"""Several objectives at once, and constraints that reject architectures before costly estimators.

`naswot,-params` is two objectives: NASWOT maximised, parameters minimised (a leading `-`).
Strategies always maximise, so a search is told the vector with minimised objectives negated;
files show every objective in its own units and direction. `params<=1.0` is a constraint: an
estimator, a comparison and a bound.
"""

import math
import operator
import re
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from nasbox.checks import first_repeated
from nasbox.errors import NasboxError
from nasbox.estimators.base import EstimatorContext
from nasbox.estimators.probe import score_together

_CONSTRAINT = re.compile(r"^\s*(?P<spec>[^<>=]+?)\s*(?P<op><=|>=|<|>)\s*(?P<bound>\S+)\s*$")
_COMPARE = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}


@dataclass(frozen=True)
class Objective:
    """An estimator spec and its direction."""

    estimator: str
    minimize: bool = False

    def __str__(self) -> str:
        return f"-{self.estimator}" if self.minimize else self.estimator

    def maximised(self, value: float) -> float:
        """The value as strategies see it: higher is better."""
        return -value if self.minimize else value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def split_specs(text: str) -> list[str]:
    """Estimator specs separated by commas. A part that is a number continues the spec before
    it, so that an argument may hold commas itself: `swap_reg:1500,2e5,params` is two specs."""
    specs: list[str] = []
    for part in text.split(","):
        if specs and _is_number(part):
            specs[-1] += "," + part.strip()
        else:
            specs.append(part.strip())
    return specs


def parse_objectives(text: str) -> list[Objective]:
    """`naswot,-params` -> [naswot (max), params (min)]; each estimator at most once."""
    objectives = []
    for part in split_specs(text):
        minimize = part.startswith("-")
        estimator = part[1:].strip() if minimize else part
        if not estimator:
            raise NasboxError(
                f"--objectives {text!r} has an empty objective; write e.g. naswot,-params "
                "(a leading '-' minimises)"
            )
        objectives.append(Objective(estimator, minimize))
    names = [objective.estimator for objective in objectives]
    twice = first_repeated(names)
    if twice is not None:
        raise NasboxError(f"--objectives names {twice!r} twice; give each objective once")
    return objectives


@dataclass(frozen=True)
class Constraint:
    """`estimator op bound`, e.g. params <= 1.0 (parameters in millions)."""

    estimator: str
    op: str
    bound: float

    def __str__(self) -> str:
        return f"{self.estimator}{self.op}{self.bound:g}"

    def holds(self, value: float) -> bool:
        return math.isfinite(value) and _COMPARE[self.op](value, self.bound)


def parse_constraint(text: str) -> Constraint:
    match = _CONSTRAINT.match(text)
    if match is None or not _is_number(match["bound"]):
        raise NasboxError(
            f"--constraint {text!r} must look like ESTIMATOR<=NUMBER, e.g. params<=1.0 or "
            "latency<5 (<=, >=, < or >)"
        )
    constraint = Constraint(match["spec"].strip(), match["op"], float(match["bound"]))
    if not math.isfinite(constraint.bound):
        raise NasboxError(
            f"--constraint {text!r}: the bound must be a finite number "
            f"({_unbounded_effect(constraint)}); give one such as {constraint.estimator}"
            f"{constraint.op}1.0, or drop the constraint"
        )
    return constraint


def _unbounded_effect(constraint: Constraint) -> str:
    """What a NaN or infinite bound would do: any finite value compares with it as 0 does."""
    if math.isnan(constraint.bound):
        return "nan compares false with every value: it would reject every architecture"
    if _COMPARE[constraint.op](0.0, constraint.bound):
        return f"every value is {constraint.op} {constraint.bound:g}: it constrains nothing"
    return f"no value is {constraint.op} {constraint.bound:g}: it would reject every architecture"


class ObjectiveVector:
    """Evaluates every objective of an architecture; returns the maximised tuple.

    Objectives that read the same network (naswot and params, say) build it once and share its
    passes (`score_together`)."""

    def __init__(self, objectives: list[Objective], context: EstimatorContext) -> None:
        from nasbox.estimators import get_estimator

        self.objectives = objectives
        self.estimators = [get_estimator(o.estimator, context) for o in objectives]

    def __call__(self, arch: Hashable) -> tuple[float, ...]:
        values = score_together(self.estimators, arch)
        return tuple(
            objective.maximised(float(value))
            for objective, value in zip(self.objectives, values, strict=True)
        )


def get_evaluator(spec: str, context: EstimatorContext) -> Callable[[Hashable], object]:
    """One estimator for `naswot`; an `ObjectiveVector` for `naswot,-params` or `-params`."""
    from nasbox.estimators import get_estimator

    objectives = parse_objectives(spec)
    if len(objectives) == 1 and not objectives[0].minimize:
        return get_estimator(objectives[0].estimator, context)
    return ObjectiveVector(objectives, context)


class ConstraintCheck:
    """Why an architecture breaks the constraints (None when it keeps them all)."""

    def __init__(self, constraints: list[Constraint], context: EstimatorContext) -> None:
        from nasbox.estimators import get_estimator

        self.constraints = constraints
        self.estimators = [get_estimator(c.estimator, context) for c in constraints]
        for constraint, estimator in zip(constraints, self.estimators, strict=True):
            if estimator.positive and constraint.op in ("<=", "<") and constraint.bound <= 0:
                raise NasboxError(
                    f"--constraint {constraint} can never hold: {constraint.estimator} is "
                    f"always above 0; give a bound above 0, e.g. {constraint.estimator}<=1"
                )

    def __call__(self, arch: Hashable) -> str | None:
        for constraint, estimator in zip(self.constraints, self.estimators, strict=True):
            value = float(estimator(arch))
            if not constraint.holds(value):
                return f"breaks {constraint} ({constraint.estimator} = {value:.4g})"
        return None
