"""`petri:<file>`: a fitted petri dish as an estimator for `nasbox search` and `nasbox score`."""

from collections.abc import Hashable

from nasbox.errors import NasboxError
from nasbox.estimators.base import Estimator, EstimatorContext
from nasbox.estimators.petri.dish import PetriDish
from nasbox.estimators.petri.motifs import MOTIF_SPACES, searchable_motif_spaces


class PetriEstimator(Estimator):
    """The dish score of an architecture: train it on the learned data, minus its val loss."""

    name = "petri"
    argument = "FILE"
    argument_hint = "a fitted dish file: petri:DISH.pt"
    cost = "trains a tiny network on the dish's synthetic data per arch"
    modality = None  # image or text: the dish names the space it was fitted on (checked below)

    def __init__(self, context: EstimatorContext, path: str) -> None:
        super().__init__(context)
        if context.space.name not in MOTIF_SPACES:
            raise NasboxError(
                f"petri:{path}: there is no petri dish for space {context.space.name!r}; use it "
                f"with --space {' or '.join(searchable_motif_spaces())}, or choose another "
                "--estimator"
            )
        self.dish = PetriDish.load(path)
        if self.dish.space.name != context.space.name:
            raise NasboxError(
                f"{path}: the dish was fitted on {self.dish.space.name!r} motifs but the search "
                f"space is {context.space.name!r}; fit one with `nasbox petri fit --space "
                f"{context.space.name}`"
            )

    def __call__(self, arch: Hashable) -> float:
        return float(self.dish.predict([arch])[0])
