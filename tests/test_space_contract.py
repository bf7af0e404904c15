"""Every registered space keeps the `SearchSpace` contract and runs under every strategy."""

import json
import random
import re
import zlib

import numpy as np
import pytest
import torch

from nasbox.cli import main
from nasbox.errors import NasboxError
from nasbox.estimators.petri import MOTIF_SPACES, DishConfig, PetriDish, get_motif_space
from nasbox.spaces import SPACES, get_space
from nasbox.spaces.rnn import RNNSpace
from nasbox.strategies import STRATEGIES, get_strategy, uses_prescore

SPACE_NAMES = SPACES.names()
# Image classifiers (image estimators score them) and language models (trained on text).
IMAGE_SPACES = [name for name in SPACE_NAMES if SPACES.get(name).modality == "image"]
TEXT_SPACES = [name for name in SPACE_NAMES if SPACES.get(name).modality == "text"]


def fake_accuracy(space, arch) -> float:
    """A deterministic stand-in for an estimator: the same architecture, the same value."""
    return zlib.crc32(space.format(arch).encode()) / 2**32


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_sample_format_parse_round_trip(name):
    space = get_space(name)
    first = [space.sample(np.random.default_rng(3)) for _ in range(2)]
    assert first[0] == first[1], "the same seed must give the same architecture"
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(20)]
    assert len(set(archs)) > 10
    for arch in archs:
        assert space.parse(space.format(arch)) == arch
        mutant = space.mutate(arch, rng)
        assert mutant != arch
        assert space.parse(space.format(mutant)) == mutant


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_any_decision_sequence_is_a_valid_architecture(name):
    space = get_space(name)
    sizes = space.decision_sizes()
    rng = np.random.default_rng(1)
    for _ in range(30):
        decisions = [int(rng.integers(size)) for size in sizes]
        arch = space.from_decisions(decisions)
        assert space.parse(space.format(arch)) == arch
        assert space.from_decisions(space.to_decisions(arch)) == arch
    with pytest.raises(NasboxError):
        space.from_decisions([0] * (len(sizes) + 1))


def test_every_space_is_an_image_or_a_text_space():
    assert sorted(IMAGE_SPACES + TEXT_SPACES) == sorted(SPACE_NAMES)
    assert "rnn" in TEXT_SPACES


@pytest.mark.parametrize("name", IMAGE_SPACES)
def test_default_architecture_builds_and_runs(name):
    space = get_space(name)
    arch = space.parse(space.default_arch)
    torch.manual_seed(0)
    network = space.build(arch, num_classes=7, in_channels=1).eval()
    with torch.no_grad():
        logits = network(torch.randn(2, 1, 16, 16))
    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", TEXT_SPACES)
def test_default_text_architecture_predicts_every_next_token(name):
    space = get_space(name)
    arch = space.parse(space.default_arch)
    torch.manual_seed(0)
    network = space.build(arch, num_classes=7).eval()
    with torch.no_grad():
        logits, hidden = network(torch.randint(7, (5, 2)))
    assert logits.shape == (5, 2, 7)
    assert torch.isfinite(logits).all() and torch.isfinite(hidden).all()


@pytest.mark.parametrize("name", TEXT_SPACES)
@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["score", "--archs", "cells.txt", "--estimator", "params"], "space {} scores text"),
        (
            ["search", "--estimator", "naswot", "--samples", "2", "--out", "search-out", "--quiet"],
            "space {} scores text",
        ),
        (
            ["search", "--strategy", "area", "--estimator", "table:valid_ppl", "--samples", "2"],
            "--prescore naswot (the default) scores image networks and space {} builds text",
        ),
        (["export", "--out", "network.onnx"], "space {} scores text"),
    ],
)
def test_image_work_refuses_text_spaces(name, command, message, tmp_path, monkeypatch, capsys):
    """Image estimators (a pre-score included) and ONNX export say why, instead of failing."""
    monkeypatch.chdir(tmp_path)
    space = get_space(name)
    (tmp_path / "cells.txt").write_text(space.format(space.parse(space.default_arch)) + "\n")
    assert main([command[0], "--space", name, *command[1:]]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and message.format(name) in error[0], error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cells.txt"]


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_network_options_build_the_filters_they_report(name):
    space = get_space(name)
    arch = space.parse(space.default_arch)
    cells, filters = space.laptop_size
    options, built = space.network_options(arch, cells, filters)
    with torch.device("meta"):
        network = space.build(arch, num_classes=10, **options)
    classifier = [m for m in network.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert classifier.in_features == built


@pytest.mark.parametrize("strategy", STRATEGIES.names())
@pytest.mark.parametrize("name", SPACE_NAMES)
def test_every_strategy_searches_every_space(name, strategy):
    space = get_space(name)
    options = {}
    if uses_prescore(strategy):
        options = {"prescore": lambda arch: fake_accuracy(space, arch), "candidates": 10}
    if strategy in ("ppo", "lstm-reinforce"):
        options = {"minibatch": 4}
    if strategy == "petri-evolution" and name not in MOTIF_SPACES:
        with pytest.raises(NasboxError, match="no petri dish"):
            get_strategy(strategy, space, seed=0)
        return
    if strategy == "petri-evolution":  # a small dish on one thread: seconds, not minutes
        torch.set_num_threads(1)
        options = {"initial": 2, "population": 4, "tournament": 2, "children": 4}
        options |= {"generations": 1, "refit_steps": 1}
    search = get_strategy(strategy, space, seed=0, **options)
    seen = []
    for _ in range(12):
        arch = search.ask()
        assert arch not in seen, f"{strategy} proposed {space.format(arch)} twice"
        seen.append(arch)
        search.tell(arch, fake_accuracy(space, arch))
    assert all(space.parse(space.format(arch)) == arch for arch in seen)


TEN_EDGES = json.dumps(
    {
        "matrix": [
            [0, 1, 1, 1, 1, 1, 0],
            *[[0] * (i + 2) + [1] * (5 - i) for i in range(5)],
            [0] * 7,
        ],
        "ops": ["input", *["conv3x3-bn-relu"] * 5, "output"],
    }
)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("nb101", '{"matrix": [[0, 1], [1, 0]], "ops": ["input", "output"]}', "backwards"),
        ("nb101", TEN_EDGES, "edges lie on input-to-output paths"),
        ("nb101", "conv5x5-bn-relu | 0>1 1>2", "conv5x5-bn-relu"),
        ("nb101", "conv3x3-bn-relu,maxpool3x3 | 1>2 2>3", "not reachable"),
        ("darts", "Genotype(normal=[('sep_conv_3x3', 0)])", "normal_concat"),
        (
            "darts",
            "Genotype(normal=[('conv_9x9', 0)" + ", ('skip_connect', 1)" * 7 + "], "
            "normal_concat=[2, 3, 4, 5], reduce=[" + "('skip_connect', 0), " * 8 + "], "
            "reduce_concat=[2, 3, 4, 5])",
            "conv_9x9",
        ),
        ("nats-size", "8:16:32", "expected 5 widths"),
        ("amoeba", "genotype please", "Genotype"),
        ("rnn", "tanh~0|gelu~1", "unknown activation 'gelu'"),
        ("rnn", "tanh~0|relu~2", "node 2 reads state 2"),
        ("rnn", "tanh-0|relu~1", "must look like 'tanh~0'"),
        ("rnn", "Genotype(recurrent=[('tanh', 0), ('relu', 1)], concat=[2])", "averages every"),
        ("rnn", "Genotype(recurrent=[('tanh', 0), 'relu'], concat=range(1, 3))", "pairs"),
    ],
)
def test_a_malformed_architecture_is_one_line_exit_2(name, text, message, capsys):
    assert main(["describe", "--space", name, "--arch", text]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and message in error[0], error


NOT_GENERATORS = [3, None, random.Random(0), np.random.RandomState(0)]


@pytest.mark.parametrize("rng", NOT_GENERATORS, ids=lambda rng: type(rng).__name__)
@pytest.mark.parametrize("name", SPACE_NAMES)
def test_sample_and_mutate_refuse_an_rng_that_is_not_a_generator(name, rng):
    space = get_space(name)
    with pytest.raises(NasboxError, match=rf"{name} sample needs rng to be a numpy Generator"):
        space.sample(rng)
    arch = space.sample(np.random.default_rng(0))
    with pytest.raises(NasboxError, match=r"mutate needs rng .*default_rng\(seed\)"):
        space.mutate(arch, rng)


@pytest.mark.parametrize(
    "text", [None, 123, b"|none~0|", ["x"]], ids=lambda text: type(text).__name__
)
@pytest.mark.parametrize("name", SPACE_NAMES)
def test_parse_refuses_text_that_is_not_a_string(name, text):
    space = get_space(name)
    with pytest.raises(NasboxError, match=rf"{name} parse needs text to be a string, got "):
        space.parse(text)


@pytest.mark.parametrize("option", ["num_classes", "in_channels"])
@pytest.mark.parametrize("value", [0, -1, 2.5])
@pytest.mark.parametrize("name", SPACE_NAMES)
def test_build_refuses_a_size_below_one(name, option, value):
    space = get_space(name)
    arch = space.parse(space.default_arch)
    with pytest.raises(NasboxError, match=rf"{name} build {option} must be "):
        space.build(arch, **{"num_classes": 7, option: value})


@pytest.mark.parametrize(
    ("name", "option"),
    [
        ("nb201", "channels"),
        ("nb201", "cells_per_stage"),
        ("nb101", "stem_channels"),
        ("rnn", "layers"),
        ("rnn", "hidden"),
    ],
)
def test_build_refuses_a_width_or_depth_of_zero(name, option):
    space = get_space(name)
    arch = space.parse(space.default_arch)
    with pytest.raises(NasboxError, match=rf"{name} build {option} must be at least 1, got 0"):
        space.build(arch, num_classes=7, **{option: 0})


def another_space_arch(space):
    """An architecture of another registered space whose type differs from `space`'s own."""
    own = type(space.sample(np.random.default_rng(0)))
    for other in SPACE_NAMES:
        arch = get_space(other).sample(np.random.default_rng(0))
        if not isinstance(arch, own):
            return arch
    raise AssertionError(f"every space shares {own.__name__}")


ARCH_METHODS = ["mutate", "to_decisions", "format", "build", "network_options"]


def call_arch_method(space, method, arch):
    """`space.method` on `arch`, with whatever else the method takes."""
    if method == "mutate":
        return space.mutate(arch, np.random.default_rng(0))
    if method == "build":
        return space.build(arch, num_classes=10)
    if method == "network_options":
        return space.network_options(arch, 2, 96)
    return getattr(space, method)(arch)


@pytest.mark.parametrize("method", ARCH_METHODS)
@pytest.mark.parametrize("name", SPACE_NAMES)
def test_another_spaces_architecture_is_refused(name, method):
    space = get_space(name)
    own = type(space.sample(np.random.default_rng(0))).__name__
    foreign = another_space_arch(space)
    message = (
        f"{name} {method} needs an architecture of type {own}, got {type(foreign).__name__}: "
        "pass an architecture of this space (space.sample or space.parse)"
    )
    with pytest.raises(NasboxError, match=re.escape(message)):
        call_arch_method(space, method, foreign)
    text = space.format(space.sample(np.random.default_rng(0)))
    with pytest.raises(NasboxError, match=rf"{name} {method} needs .*, got str"):
        call_arch_method(space, method, text)


# Four blocks of shared op names, the first concatenating: a nasnet genotype only nasnet has.
CONCAT_CELL = " | ".join(
    ["sep_conv_3x3~0 & sep_conv_3x3~1"] + ["sep_conv_3x3~0 + sep_conv_3x3~1"] * 3
)
FOREIGN_GENOTYPES = [
    pytest.param(
        "nasnet",
        "darts",
        "darts-v2",
        " got a genotype with operations nasnet does not have (skip_connect)",
        id="darts-v2 to nasnet",
    ),
    pytest.param(
        "darts",
        "nasnet",
        "nasnet-a",
        " got a genotype with operations darts does not have (identity, sep_conv_7x7) and 5 "
        "blocks per cell where darts has 4",
        id="nasnet-a to darts",
    ),
    pytest.param(
        "amoeba",
        "darts",
        "darts-v2",
        " got a genotype with operations amoeba does not have (dil_conv_3x3) and 4 blocks per "
        "cell where amoeba has 5",
        id="darts-v2 to amoeba",
    ),
    pytest.param(
        "pnas",
        "darts",
        "darts-v2",
        " got a genotype with 4 blocks per cell where pnas has 5",
        id="darts-v2 to pnas",
    ),
    pytest.param(
        "enas",
        "amoeba",
        "amoebanet-a",
        " got a genotype with operations enas does not have (sep_conv_7x7, conv_7x1_1x7)",
        id="amoebanet-a to enas",
    ),
    pytest.param(
        "darts",
        "nasnet",
        f"normal: {CONCAT_CELL} ; reduce: {CONCAT_CELL}",
        ": normal cell, block 1: unknown combination 'concat'; use add",
        id="concatenating nasnet cell to darts",
    ),
]


@pytest.mark.parametrize("method", ARCH_METHODS)
@pytest.mark.parametrize(("name", "other", "text", "problem"), FOREIGN_GENOTYPES)
def test_another_cell_presets_genotype_is_refused(name, other, text, problem, method):
    """The five cell presets share one genotype type, so the type check alone let another
    preset's genotype through: format printed it, build built a network of it."""
    space = get_space(name)
    genotype = get_space(other).parse(text)
    with pytest.raises(NasboxError, match="^" + re.escape(f"{name} {method}{problem}")):
        call_arch_method(space, method, genotype)


MOTIF_METHODS = ["format", "mutate", "encode", "forward", "predict", "fit"]


def call_motif_method(space, method, motifs):
    """`method` of a motif space (or of a one-motif-per-batch dish on it) on `motifs`; format
    and mutate take the last one."""
    if method == "format":
        return space.format(motifs[-1])
    if method == "mutate":
        return space.mutate(motifs[-1], np.random.default_rng(0))
    if method == "encode":
        return space.encode(motifs)
    if method == "forward":
        weights = space.init_weights(torch.Generator().manual_seed(0))
        weights = {name: value.expand(len(motifs), *value.shape) for name, value in weights.items()}
        return space.forward(weights, motifs, torch.zeros(2, *space.input_shape))
    dish = PetriDish(space, DishConfig(samples=2, inner_steps=1, outer_steps=1, batch=1))
    if method == "predict":
        return dish.predict(motifs)
    return dish.fit(motifs, list(range(len(motifs))), progress=False)


@pytest.mark.parametrize("method", MOTIF_METHODS)
@pytest.mark.parametrize("name", MOTIF_SPACES.names())
def test_another_motif_spaces_motif_is_refused(name, method):
    """A motif space's methods check their motifs as the search spaces do; the dish checks
    them all before its first batch, so no batch's work is lost."""
    space = get_motif_space(name)
    own = space.sample(np.random.default_rng(0))
    foreign = next(
        motif
        for other in MOTIF_SPACES.names()
        if not isinstance(
            motif := get_motif_space(other).sample(np.random.default_rng(0)), type(own)
        )
    )
    for wrong in (foreign, space.format(own)):
        message = (
            f"{name} motif {method} needs an architecture of type {type(own).__name__}, got "
            f"{type(wrong).__name__}: pass an architecture of this space"
        )
        with pytest.raises(NasboxError, match=re.escape(message)):
            call_motif_method(space, method, [own, wrong])


@pytest.mark.parametrize("method", MOTIF_METHODS)
def test_a_slope_is_any_real_number(method):
    """An int or a numpy float is a slope as a float is: the check refuses other spaces' motifs,
    not the numbers a user types."""
    space = get_motif_space("slope")
    call_motif_method(space, method, [1, np.float32(0.5), np.int64(2), 1.5])


@pytest.mark.parametrize("method", MOTIF_METHODS)
@pytest.mark.parametrize("nodes", [3, 12])
def test_the_rnn_dish_refuses_a_cell_of_another_size(nodes, method):
    """The dish has weights for 8 nodes: a 3-node cell was scored with zeros for its missing
    nodes, a 12-node cell failed with an IndexError."""
    space = get_motif_space("rnn")
    cells = [
        space.sample(np.random.default_rng(0)),
        RNNSpace(nodes).sample(np.random.default_rng(0)),
    ]
    message = f"rnn motif {method} got a cell of {nodes} nodes; this dish's cells have 8"
    with pytest.raises(NasboxError, match=re.escape(message)):
        call_motif_method(space, method, cells)
