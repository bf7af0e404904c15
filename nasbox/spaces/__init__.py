"""Search spaces: what an architecture is. Look one up by name with `get_space`."""

from nasbox.registry import Registry
from nasbox.spaces.base import SearchSpace
from nasbox.spaces.cells import AmoebaSpace, DartsSpace, ENASSpace, NASNetSpace, PNASSpace
from nasbox.spaces.nasnet import NASNET_A, NASNetGenotype
from nasbox.spaces.nats import NATSSizeArch, NATSSizeSpace
from nasbox.spaces.nb101 import NB101Cell, NB101Space
from nasbox.spaces.nb201 import NB201Cell, NB201Space
from nasbox.spaces.rnn import RNNCell, RNNSpace

SPACES: Registry[SearchSpace] = Registry("search space")
SPACES.register("nb201")(NB201Space)
SPACES.register("nasnet")(NASNetSpace)
SPACES.register("darts")(DartsSpace)
SPACES.register("amoeba")(AmoebaSpace)
SPACES.register("pnas")(PNASSpace)
SPACES.register("enas")(ENASSpace)
SPACES.register("nats-size")(NATSSizeSpace)
SPACES.register("nb101")(NB101Space)
SPACES.register("rnn")(RNNSpace)


def get_space(name: str) -> SearchSpace:
    return SPACES.create(name)


__all__ = [
    "NASNET_A",
    "SPACES",
    "NASNetGenotype",
    "NASNetSpace",
    "NATSSizeArch",
    "NATSSizeSpace",
    "NB101Cell",
    "NB101Space",
    "NB201Cell",
    "NB201Space",
    "RNNCell",
    "RNNSpace",
    "SearchSpace",
    "get_space",
]
