"""Strategies with parallel workers: pending proposals, out-of-order tells, failures.

With one worker (ask, tell, ask, ...) every strategy must keep making exactly the proposals it
made before strategies became asynchronous: resume replays ask/tell sequences, and the README's
figures come from seeded runs. `STRICT_DIGESTS` pins those sequences.
"""

import hashlib
import math

import numpy as np
import pytest
import torch

from nasbox.errors import NasboxError
from nasbox.estimators.petri.dish import DishConfig, PetriDish
from nasbox.estimators.petri.motifs import get_motif_space
from nasbox.spaces import get_space
from nasbox.strategies import STRATEGIES, get_strategy
from nasbox.strategies.petri_evolution import FIRST_LOOP

NB201 = get_space("nb201")
NAMES = STRATEGIES.names()


def _unit(text: str) -> float:
    """A value in [0, 1) fixed by `text` alone (Python's `hash` changes between processes)."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16) / 16**12


def landscape(arch) -> float:
    """Few plateaus (convolution count) broken by a hash: deterministic, and worth climbing."""
    return arch.ops.count("nor_conv_3x3") + _unit(str(arch))


def prescore(arch) -> float:
    return _unit(f"prescore {arch}")


@pytest.fixture(autouse=True)
def _one_thread():
    """The tiny dish's tensors gain nothing from threads; on a busy CPU a second one costs 10x."""
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def dish_path(tmp_path_factory):
    """A tiny saved nb201 dish, so petri-evolution runs in well under a second per refit."""
    motifs = get_motif_space("nb201", channels=2, image_size=4)
    dish = PetriDish(motifs, DishConfig(samples=4, inner_steps=2, outer_steps=2, batch=4), seed=0)
    return str(dish.save(tmp_path_factory.mktemp("dish") / "tiny.pt"))


def make(name: str, seed: int, dish_path: str, **overrides):
    """Strategy `name` with small settings, so every code path runs within a short budget."""
    options = {
        "area": {"prescore": prescore, "candidates": 20},
        "ppo": {"minibatch": 5, "learning_rate": 0.01},
        "lstm-reinforce": {"minibatch": 5, "learning_rate": 0.01},
        "petri-evolution": dict(
            initial=4,
            population=4,
            tournament=2,
            generations=1,
            children=4,
            refit_steps=1,
            dish=dish_path,
        ),
    }.get(name, {})
    return get_strategy(name, NB201, seed=seed, **{**options, **overrides})


def strict_proposals(strategy, budget: int) -> list[str]:
    proposals = []
    for _ in range(budget):
        arch = strategy.ask()
        strategy.tell(arch, landscape(arch))
        proposals.append(str(arch))
    return proposals


def digest(proposals: list[str]) -> str:
    return hashlib.sha256("\n".join(proposals).encode()).hexdigest()[:16]


STRICT_BUDGET = {"petri-evolution": 12}

# Recorded at commit ef3708b, before strategies handled pending proposals.
STRICT_DIGESTS = {
    ("area", 0): "6b8c1f5b9253e109",
    ("area", 1): "9e128176e5004e69",
    ("evolution", 0): "761d15e0aa4b499a",
    ("evolution", 1): "a5dda168a540d4f8",
    ("lstm-reinforce", 0): "afc57789adab5afd",
    ("lstm-reinforce", 1): "b938b945766050c2",
    ("petri-evolution", 0): "08997c257f921dd2",
    ("petri-evolution", 1): "570939497a8d93dc",
    ("ppo", 0): "755bb1847b5a22ef",
    ("ppo", 1): "37e13f87ceb50a04",
    ("random", 0): "40561aded87b0a46",
    ("random", 1): "3a155c274394052c",
    ("reinforce", 0): "002839c5ce4e4adc",
    ("reinforce", 1): "14008c72bf4dabf2",
}


# The defaults of that commit, where they have changed since.
RECORDED_OPTIONS = {"petri-evolution": FIRST_LOOP}


@pytest.mark.parametrize(("name", "seed"), sorted(STRICT_DIGESTS))
def test_one_worker_makes_the_same_proposals_as_before(name, seed, dish_path):
    strategy = make(name, seed, dish_path, **RECORDED_OPTIONS.get(name, {}))
    proposals = strict_proposals(strategy, STRICT_BUDGET.get(name, 30))
    assert digest(proposals) == STRICT_DIGESTS[name, seed]


def run_async(strategy, budget: int, workers: int, order_seed: int):
    """Keep `workers` proposals pending and tell a random pending one each time, as parallel
    workers with uneven evaluation times would; every 7th value fails (-inf), every 11th is NaN.
    """
    rng = np.random.default_rng(order_seed)
    pending, proposals, told = [], [], []
    while len(told) < budget:
        while len(pending) < workers and len(proposals) < budget:
            pending.append(strategy.ask())
            proposals.append(pending[-1])
        arch = pending.pop(int(rng.integers(len(pending))))
        count = len(told) + 1
        value = -math.inf if count % 7 == 0 else math.nan if count % 11 == 0 else landscape(arch)
        strategy.tell(arch, value)
        told.append((arch, -math.inf if math.isnan(value) else value))
    return proposals, told


@pytest.mark.parametrize("name", NAMES)
def test_pending_proposals_and_out_of_order_tells(name, dish_path):
    budget = STRICT_BUDGET.get(name, 40)
    strategy = make(name, 3, dish_path)
    proposals, told = run_async(strategy, budget, workers=8, order_seed=5)
    assert len(set(proposals)) == budget
    assert strategy.best == max(told, key=lambda item: item[1])  # ties go to the earliest
    assert strategy.history == told and not strategy.pending
    again, _ = run_async(make(name, 3, dish_path), budget, workers=8, order_seed=5)
    assert again == proposals  # same seed, same interleaving: same proposals


@pytest.mark.parametrize("name", NAMES)
def test_telling_an_unasked_or_already_told_architecture_is_an_error(name, dish_path):
    strategy = make(name, 0, dish_path)
    asked = strategy.ask()
    never_asked = next(arch for arch in NB201 if arch != asked)
    with pytest.raises(NasboxError, match="did not ask"):
        strategy.tell(never_asked, 1.0)
    strategy.tell(asked, 1.0)
    with pytest.raises(NasboxError, match="told it twice"):
        strategy.tell(asked, 2.0)


def test_evolution_proposes_random_cells_until_its_population_is_complete():
    strategy = get_strategy("evolution", NB201, seed=0, population_size=10, tournament_size=5)
    burst = [strategy.ask() for _ in range(12)]  # more workers than the population: no raise
    assert len(set(burst)) == 12
    for arch in burst[9::-1]:  # ten of the twelve come back, in reverse
        strategy.tell(arch, landscape(arch))
    told = set(burst[:10])
    for _ in range(30):
        members = [arch for arch, _ in strategy.population]
        assert set(members) <= told  # tournaments never see the two pending cells
        child = strategy.ask()
        assert any(sum(a != b for a, b in zip(child.ops, m.ops, strict=True)) == 1 for m in members)
        strategy.tell(child, landscape(child))
        told.add(child)


class BatchPrescore:
    """A pre-scorer that scores many cells per call, as the workers of a search would."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def many(self, cells):
        self.calls.append(len(cells))
        return [prescore(cell) for cell in cells]


class OneScore:
    """A broken batch pre-scorer: one score, however many cells it is given."""

    def many(self, cells):
        return [1.0]


def test_area_prescores_its_candidates_in_one_batch():
    batch = BatchPrescore()
    batched = get_strategy("area", NB201, seed=4, prescore=batch, candidates=20)
    per_cell = get_strategy("area", NB201, seed=4, prescore=prescore, candidates=20)
    assert strict_proposals(batched, 30) == strict_proposals(per_cell, 30)
    assert batch.calls == [20]


def test_area_proposes_the_next_ranked_candidates_while_its_population_fills():
    strategy = get_strategy("area", NB201, seed=0, prescore=prescore, candidates=20)
    burst = [strategy.ask() for _ in range(25)]
    scores = [prescore(arch) for arch in burst[:20]]
    assert scores == sorted(scores, reverse=True)  # all 20 candidates, best first
    assert len(set(burst)) == 25  # then random unseen cells
    with pytest.raises(NasboxError, match="returned 1 scores for 20 cells"):
        get_strategy("area", NB201, prescore=OneScore()).ask()
