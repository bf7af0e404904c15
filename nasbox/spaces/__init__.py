"""Search spaces: what an architecture is. Look one up by name with `get_space`."""

from nasbox.errors import NasboxError
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


def read_elsewhere(space: SearchSpace, text: str) -> str:
    """'; it reads as --space darts or rnn' where `text`, refused by `space`, parses in other
    registered spaces (ENAS-like genotypes parse in several cell spaces), else ''."""
    names = []
    for name in SPACES.names():
        if name != space.name:
            try:
                get_space(name).parse(text)
            except NasboxError:
                continue
            names.append(name)
    if not names:
        return ""
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    return f"; it reads as --space {listed}"


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
    "read_elsewhere",
]
