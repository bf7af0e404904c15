"""What a search space is: architectures that can be sampled, mutated, printed and built."""

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterator, Sequence

import numpy as np
from torch import nn

from nasbox.errors import NasboxError


class SearchSpace(ABC):
    """A family of architectures.

    Architectures are immutable, hashable values. Strategies only need `sample`, `mutate` and
    the decision-sequence view (`decision_sizes`, `to_decisions`, `from_decisions`); estimators
    need `build`; files and the CLI use `parse` and `format`.
    """

    name: str
    #: The architecture `train` and `describe` use when no --arch is given (a string or a name).
    default_arch: str
    #: N@F (cells per stage, penultimate filters) of the network the space's paper reports.
    published_size: tuple[int, int]
    #: N@F of a network that trains in minutes on a laptop CPU (`nasbox train`'s default).
    laptop_size: tuple[int, int]
    #: Whether `build` takes `auxiliary=` and `dropout=` (cell networks that train with them).
    has_auxiliary_head: bool = False
    #: What the networks `build` makes read: "image" (classifiers of NCHW images, which the
    #: image estimators score) or "text" (language models of token ids, trained on text data).
    modality: str = "image"

    @abstractmethod
    def sample(self, rng: np.random.Generator) -> Hashable:
        """Draw one architecture uniformly at random."""

    @abstractmethod
    def mutate(self, arch: Hashable, rng: np.random.Generator) -> Hashable:
        """Return a neighbour of `arch` that differs in exactly one decision."""

    @abstractmethod
    def parse(self, text: str) -> Hashable:
        """Read an architecture from its string form; raise `NasboxError` naming the bad part."""

    @abstractmethod
    def format(self, arch: Hashable) -> str:
        """The canonical string form of `arch` (the inverse of `parse`)."""

    @abstractmethod
    def build(
        self, arch: Hashable, *, num_classes: int, in_channels: int = 3, **options
    ) -> nn.Module:
        """A freshly initialised network that uses `arch`."""

    @abstractmethod
    def network_options(self, arch: Hashable, cells: int, filters: int) -> tuple[dict, int]:
        """`build` options for the N@F network of `arch`, and the F those options really build.

        F is rounded to what the space can build; callers say so when it differs.
        """

    @abstractmethod
    def decision_sizes(self) -> list[int]:
        """Number of options of each decision, in the order a controller emits them."""

    @abstractmethod
    def to_decisions(self, arch: Hashable) -> list[int]:
        """The decision sequence that produces `arch`."""

    @abstractmethod
    def from_decisions(self, decisions: Sequence[int]) -> Hashable:
        """The architecture a decision sequence describes."""

    def __len__(self) -> int:
        return int(np.prod([float(n) for n in self.decision_sizes()]))

    def __iter__(self) -> Iterator[Hashable]:
        """Every architecture, for spaces small enough to enumerate."""
        sizes = self.decision_sizes()
        for flat in range(len(self)):
            decisions = []
            for size in reversed(sizes):
                flat, choice = divmod(flat, size)
                decisions.append(choice)
            yield self.from_decisions(decisions[::-1])

    def parse_many(
        self,
        lines: Sequence[str],
        source: str = "input",
        hint: Callable[[str], str] = lambda text: "",
    ) -> list[Hashable]:
        """Parse one architecture per non-blank line; the error names the first bad line (with
        what `hint` adds for its text) and the number of every other, so that one run finds
        them all."""
        archs, bad = [], []
        for number, line in enumerate(lines, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            try:
                archs.append(self.parse(text))
            except NasboxError as err:
                bad.append((number, f"{err}{hint(text) if not bad else ''}"))
        if bad:
            others = [str(number) for number, _ in bad[1:11]] + ["..."] * (len(bad) > 11)
            more = f" ({len(bad)} bad lines in all; the others: {', '.join(others)})"
            number, err = bad[0]
            raise NasboxError(f"{source}, line {number}: {err}{more if others else ''}")
        return archs
