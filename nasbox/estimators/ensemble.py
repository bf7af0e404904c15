"""A label-free ensemble of training-free proxies that scores cells one at a time.

A rank average needs the whole pool at once; a search sees one cell at a time. So each member's
score is put on a common scale fixed in advance: sign(x) log(1 + |x|) (proxies such as synflow
span many decades), then centred and scaled by the median and interquartile range of the same
member on REFERENCE_CELLS seeded random cells of the space, computed once per ensemble. The
ensemble is the mean of these robust z-scores (or a weighted sum, for fitted weights); a member
at -inf makes the cell -inf. No accuracy label is read anywhere.

`ensemble:meco*4+naswot` weighs members (weights are normalised to sum 1); the default weights
were fixed on development cells and seeds before the reported run and stay fixed in use.
`Ensemble.fitted` is the few-label option: ridge-regression weights from K cells whose accuracy
is known (a table's, or trained candidates').
"""

import math
import re
from collections.abc import Hashable, Sequence

import numpy as np

from nasbox.errors import NasboxError
from nasbox.estimators.base import Estimator, EstimatorContext
from nasbox.estimators.probe import Probe, minibatch_of, score_on_probe, shares_probe

REFERENCE_CELLS = 32
#: The default members per space, each chosen on development seeds and cells that the reported
#: figures do not use (README); spaces without their own take NB201's.
DEFAULT_SPECS = {
    "nb201": "meco*8+synflow",
    "nb101": "naswot+flops*8+meco*4",
    "darts": "flops+synflow*2+zen",
}


def default_spec(space_name: str) -> str:
    return DEFAULT_SPECS.get(space_name, DEFAULT_SPECS["nb201"])


def squash(value: float) -> float:
    return math.copysign(math.log1p(abs(value)), value)


def robust_scale(squashed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column of squashed scores (one row per cell): the median of the finite values and
    their interquartile range / 1.349 (the standard deviation, for a normal distribution)."""
    centre, spread = [], []
    for column in squashed.T:
        finite = column[np.isfinite(column)]
        if len(finite) == 0:
            centre.append(0.0)
            spread.append(1.0)
            continue
        low, mid, high = np.percentile(finite, [25, 50, 75])
        centre.append(mid)
        spread.append((high - low) / 1.349 or float(finite.std()) or 1.0)
    return np.array(centre), np.array(spread)


#: A weight as people write one: Python's float() also takes `1_0` (10), `inf` and `nan`.
_WEIGHT = re.compile(r"^\s*(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")


def parse_members(spec: str) -> tuple[list[str], list[float]]:
    """`meco*4+naswot` -> (["meco", "naswot"], [4.0, 1.0])."""
    names, weights = [], []
    for token in spec.split("+"):
        name, star, weight = token.strip().partition("*")
        name = name.strip()
        if not name:
            raise NasboxError(
                f"ensemble needs members joined by '+', e.g. ensemble:naswot+meco; got {spec!r}"
            )
        if name.partition(":")[0].strip() == Ensemble.name:
            raise NasboxError(
                f"ensemble member {name!r} is an ensemble itself; list the proxies and their "
                "weights in one ensemble, e.g. ensemble:meco*8+synflow"
            )
        value = 1.0
        if star:
            value = float(weight) if _WEIGHT.match(weight) else math.nan
        if not (math.isfinite(value) and value > 0):
            raise NasboxError(f"ensemble weight of {name!r} must be a number > 0, got {weight!r}")
        if name in names:
            raise NasboxError(f"ensemble member {name!r} is listed twice")
        names.append(name)
        weights.append(value)
    return names, weights


def normalised(names: Sequence[str], weights: Sequence[float]) -> list[float]:
    """`weights` scaled to sum 1; divided by the largest first, so that a sum of weights near
    1e308 cannot overflow to infinity and turn every weight into 0."""
    largest = max(weights)
    relative = [weight / largest for weight in weights]
    if 0.0 in relative:
        name = names[relative.index(0.0)]
        raise NasboxError(
            f"ensemble weight of {name!r} is too small beside the largest to count at all; "
            "give weights of comparable size"
        )
    total = sum(relative)
    return [weight / total for weight in relative]


def format_members(names: Sequence[str], weights: Sequence[float]) -> str:
    """The inverse of `parse_members`: (["meco", "naswot"], [4.0, 1.0]) -> `meco*4+naswot`."""
    pairs = zip(names, weights, strict=True)
    return "+".join(name if weight == 1 else f"{name}*{weight:g}" for name, weight in pairs)


class Ensemble(Estimator):
    """Mean robust z-score of weighted proxies (bare `ensemble`: the space's default members)."""

    name = "ensemble"
    needs_data = True  # most members read images, and the reference cells are scored on them
    argument = "MEMBERS"
    argument_hint = "members joined by '+', e.g. ensemble:naswot+meco+swap or meco*4+naswot"
    cost = "the members' shared passes per arch, plus theirs on 32 reference cells once"

    def __init__(
        self,
        context: EstimatorContext,
        members: Sequence[Estimator],
        names: Sequence[str],
        weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__(context)
        self.members = list(members)
        self.names = list(names)
        equal = np.full(len(members), 1 / len(members))
        self.weights = equal if weights is None else np.asarray(weights, dtype=float)
        self.images, self.labels = minibatch_of(self.members)
        self._scale: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def from_spec(cls, context: EstimatorContext, argument: str | None) -> "Ensemble":
        from nasbox.estimators import get_estimator

        names, weights = parse_members(
            default_spec(context.space.name) if argument is None else argument
        )
        members = [get_estimator(name, context) for name in names]
        for name, member in zip(names, members, strict=True):
            if not shares_probe(member):
                raise NasboxError(
                    f"ensemble member {name!r} is not a training-free proxy; members come from "
                    "naswot, jacov, params, flops and the zero-cost proxies of `nasbox list`"
                )
        return cls(context, members, names, normalised(names, weights))

    def member_scores(self, probe: Probe) -> np.ndarray:
        return np.array([score_on_probe(member, probe) for member in self.members])

    def probe(self, arch: Hashable) -> Probe:
        return Probe(self.context, arch, self.images, self.labels)

    @property
    def scale(self) -> tuple[np.ndarray, np.ndarray]:
        """Per member: median and IQR / 1.349 of the squashed scores of the reference cells."""
        if self._scale is None:
            rng = np.random.default_rng(self.context.seed)
            rows = [
                self.member_scores(self.probe(self.context.space.sample(rng)))
                for _ in range(REFERENCE_CELLS)
            ]
            self._scale = robust_scale(np.vectorize(squash)(np.array(rows)))
        return self._scale

    def z_scores(self, scores: np.ndarray) -> np.ndarray:
        """Members' scores (one row per cell) on the reference scale."""
        centre, spread = self.scale
        return (np.vectorize(squash)(np.asarray(scores, dtype=float)) - centre) / spread

    def fitted(self, scores: np.ndarray, accuracies: np.ndarray, ridge: float = 1.0) -> "Ensemble":
        """The same members, weighted by ridge regression of `accuracies` on the z-scores of
        `scores` (one row per labelled cell); cells with a -inf member are left out."""
        z = self.z_scores(scores)
        usable = np.all(np.isfinite(z), axis=1)
        z, y = z[usable], np.asarray(accuracies, dtype=float)[usable]
        z_centred = z - z.mean(0)
        gram = z_centred.T @ z_centred + ridge * np.eye(z.shape[1])
        weights = np.linalg.solve(gram, z_centred.T @ (y - y.mean()))
        fitted = Ensemble(self.context, self.members, self.names, weights)
        fitted._scale = self._scale
        return fitted

    def combine(self, scores: np.ndarray) -> float:
        """The ensemble value of one cell's member scores."""
        if not np.all(np.isfinite(scores)):
            return -math.inf
        return float(np.dot(self.weights, self.z_scores(scores)))

    def score_probe(self, probe: Probe) -> float:
        return self.combine(self.member_scores(probe))

    def __call__(self, arch: Hashable) -> float:
        return self.score_probe(self.probe(arch))
