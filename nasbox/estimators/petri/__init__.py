"""The Synthetic Petri Dish: a learned-data surrogate that ranks motifs from little ground truth."""

from nasbox.estimators.petri.dish import DishConfig, PetriDish, default_config
from nasbox.estimators.petri.motifs import (
    MOTIF_SPACES,
    MotifSpace,
    NB201Motifs,
    RNNMotifs,
    SlopeMotifs,
    get_motif_space,
)

__all__ = [
    "MOTIF_SPACES",
    "DishConfig",
    "MotifSpace",
    "NB201Motifs",
    "PetriDish",
    "RNNMotifs",
    "SlopeMotifs",
    "default_config",
    "get_motif_space",
]
