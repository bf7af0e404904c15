"""Petri-dish evolution (Rawal et al., 2020): evolve with the dish as fitness, verify, refit.

Each round refits the dish on every architecture evaluated so far (warm-started from the previous
synthetic data), runs a small aging evolution whose fitness is the dish score, and proposes the
top predicted architecture not yet evaluated plus `explore` random architectures. The first
`initial` proposals are random.

The dish's evolution starts from the best `population` evaluated architectures (`start="best"`),
so its proposals stay near verified good ones, as regularised evolution's mutations do; or from
fresh random architectures (`start="random"`, with `explore=1` the first version's loop). The
default spends no trainings on random cells after the first `initial`. With the same dish, on
recurrent cells it found better cells than that loop (5 seeds, 30 trainings), and on the
NAS-Bench-201 table about as good ones (see the README).

With parallel workers the dish is fitted on the told values only, and refitted only when a value
arrived since the last fit: a burst of asks reuses the fitted dish instead of refitting it on the
same data.
"""

import math
from collections import deque
from collections.abc import Hashable

import numpy as np

from nasbox.checks import check_count
from nasbox.errors import NasboxError
from nasbox.estimators.petri.dish import MAX_OUTER_STEPS, PetriDish, default_config
from nasbox.estimators.petri.motifs import (
    MOTIF_SPACES,
    get_motif_space,
    searchable_motif_spaces,
)
from nasbox.spaces import SearchSpace
from nasbox.strategies.base import Strategy

STARTS = ("random", "best")
# The options of the first version's loop (its defaults), for comparing against it.
FIRST_LOOP = {"start": "random", "explore": 1}


class PetriEvolution(Strategy):
    name = "petri-evolution"
    cost = "random at first, then a dish refit and a dish-scored evolution (seconds)"

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        initial: int = 10,
        population: int = 20,
        tournament: int = 5,
        generations: int = 5,
        children: int = 20,
        refit_steps: int = 5,
        dish: str | None = None,
        start: str = "best",
        explore: int = 0,
    ) -> None:
        super().__init__(space, seed)
        if space.name not in MOTIF_SPACES:
            raise NasboxError(
                f"petri-evolution has no petri dish for space {space.name!r}; use it with "
                f"--space {' or '.join(searchable_motif_spaces())}, or choose another --strategy"
            )
        check_count(initial, "petri-evolution initial", minimum=2)
        check_count(population, "petri-evolution population", minimum=2)
        check_count(tournament, "petri-evolution tournament")
        if tournament > population:  # the counts' lower limits are checked above
            raise NasboxError(
                "petri-evolution needs initial >= 2, population >= 2 and 1 <= tournament <= "
                f"population, got initial {initial}, population {population}, tournament "
                f"{tournament}"
            )
        check_count(generations, "petri-evolution generations", minimum=0)
        check_count(children, "petri-evolution children")
        check_count(
            refit_steps,
            "petri-evolution refit_steps",
            maximum=MAX_OUTER_STEPS,
            why="each refit step runs the whole unrolled inner training again",
        )
        check_count(explore, "petri-evolution explore", minimum=0)
        if start not in STARTS:
            raise NasboxError(
                f"petri-evolution start must be one of: {', '.join(STARTS)}; got {start!r}"
            )
        if dish is not None and not str(dish).strip():  # an empty path is the current folder
            raise NasboxError(
                "petri-evolution dish is empty; give a dish file made with `nasbox petri fit`, "
                "or none for a new dish"
            )
        if dish is not None:
            self.dish = PetriDish.load(dish)
            if self.dish.space.name != space.name:
                raise NasboxError(f"{dish}: a {self.dish.space.name!r} dish, not {space.name!r}")
        else:
            motifs = get_motif_space(space.name)
            self.dish = PetriDish(motifs, default_config(space.name), seed=seed)
        self.dish.config.outer_steps = refit_steps
        self.initial, self.population, self.tournament = initial, population, tournament
        self.generations, self.children = generations, children
        self.start, self.explore = start, explore
        self._queue: list[Hashable] = []
        self._fitted_on: int | None = None  # how many values were told at the last refit
        self._fit_usable = False  # whether that refit fitted the dish

    def _refit(self) -> bool:
        """Whether the dish is fitted to the told values, refitting it when new ones came."""
        if self._fitted_on == len(self.history):
            return self._fit_usable
        self._fitted_on = len(self.history)
        labelled = [(arch, value) for arch, value in self.history if math.isfinite(value)]
        values = [value for _, value in labelled]
        self._fit_usable = len(labelled) >= 2 and bool(np.std(values) > 0)
        if self._fit_usable:
            self.dish.fit([arch for arch, _ in labelled], values, progress=False)
        return self._fit_usable

    def _first_members(self) -> list[Hashable]:
        """The dish evolution's first population: random, or the best evaluated architectures."""
        if self.start == "random":
            return [self._unseen_sample() for _ in range(self.population)]
        told = [item for item in self.history if math.isfinite(item[1])]
        told.sort(key=lambda item: item[1], reverse=True)
        return [arch for arch, _ in told[: self.population]]

    def _evolve(self) -> Hashable:
        """Aging evolution on dish scores; the best predicted architecture not yet proposed."""
        members = deque(self._first_members())
        tournament = min(self.tournament, len(members))
        scores = deque(self.dish.predict(list(members)).tolist())
        candidates = dict(zip(members, scores, strict=True))
        for _ in range(self.generations):
            kids = []
            for _ in range(self.children):
                picks = self.rng.choice(len(members), size=tournament, replace=False)
                parent = members[max(picks, key=lambda i: scores[i])]
                kids.append(self.space.mutate(parent, self.rng))
            kid_scores = self.dish.predict(kids).tolist()
            for kid, score in zip(kids, kid_scores, strict=True):
                members.append(kid)
                scores.append(score)
                members.popleft()
                scores.popleft()
                candidates[kid] = score
        fresh = {arch: s for arch, s in candidates.items() if arch not in self._proposed}
        return max(fresh, key=fresh.get) if fresh else self._unseen_sample()

    def ask(self) -> Hashable:
        if not self._queue:
            if len(self._proposed) < self.initial or not self._refit():
                self._queue = [self._unseen_sample()]
            else:
                self._queue = [self._evolve()]
                self._reserve(self._queue[0])
                for _ in range(self.explore):
                    self._queue.append(self._unseen_sample())
                    self._reserve(self._queue[-1])
        return self._propose(self._queue.pop(0))
