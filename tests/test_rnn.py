"""The rnn space: DARTS' recurrent cell, its strings, decisions and language model."""

import numpy as np
import pytest
import torch

from nasbox.errors import NasboxError
from nasbox.spaces import get_space
from nasbox.spaces.rnn import DARTS_V2, ENAS, RNNCell, RNNSpace

V2_STRING = "sigmoid~0|relu~1|relu~1|identity~1|tanh~2|sigmoid~5|tanh~3|relu~5"
V2_GENOTYPE = (
    "Genotype(recurrent=[('sigmoid', 0), ('relu', 1), ('relu', 1), ('identity', 1), "
    "('tanh', 2), ('sigmoid', 5), ('tanh', 3), ('relu', 5)], concat=range(1, 9))"
)


def test_darts_v2_reads_as_a_string_a_genotype_and_a_name():
    space = get_space("rnn")
    assert space.parse(V2_STRING) == space.parse(V2_GENOTYPE) == space.parse("DARTS_V2")
    assert space.format(space.parse("darts-v2")) == V2_STRING
    assert space.parse("darts-v2").nodes[5] == ("sigmoid", 5)


def test_named_cells_are_the_published_ones():
    space = get_space("rnn")
    assert space.format(space.parse("darts-v1")) == (
        "relu~0|relu~1|tanh~2|relu~3|relu~4|identity~1|relu~5|relu~1"
    )
    # ENAS' `0 0 0 1 1 2 1 2 0 2 0 5 1 1 0 6 1 8 1 8 1 8 1` (codes: 0 tanh, 1 relu): 11 nodes.
    assert len(ENAS.nodes) == 11
    assert ENAS.nodes[:3] == (("tanh", 0), ("relu", 1), ("relu", 2))
    assert ENAS.nodes[-1] == ("relu", 8)


def test_a_genotype_in_positional_form_with_a_concat_list_parses():
    text = "Genotype([('tanh', 0), ('relu', 1)], [2, 1])"
    assert get_space("rnn").parse(text) == RNNCell((("tanh", 0), ("relu", 1)))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "must look like"),
        ("tanh~0||relu~1", "node 2 part ''"),
        ("none~0", "unknown activation 'none'"),
        ("tanh~1", "node 1 reads state 1"),
        ("Genotype(recurrent=[('tanh', 0)], concat=range(1, 2), extra=1)", "unknown field"),
        ("Genotype(recurrent=[('tanh', 0)])", "has no concat"),
        ("|".join(["tanh~0"] * 65), "give 1 to 64"),
    ],
)
def test_malformed_cells_name_the_problem(text, message):
    with pytest.raises(NasboxError, match=message):
        get_space("rnn").parse(text)


def test_mutation_changes_exactly_one_decision():
    space = get_space("rnn")
    rng = np.random.default_rng(0)
    for _ in range(50):
        arch = space.sample(rng)
        mutant = space.mutate(arch, rng)
        before, after = space.to_decisions(arch), space.to_decisions(mutant)
        assert sum(a != b for a, b in zip(before, after, strict=True)) == 1


def test_decisions_round_trip_and_node_1_has_no_input_choice():
    space = RNNSpace(nodes=3)
    assert space.decision_sizes() == [4, 2, 4, 3, 4]
    assert len(space) == 4**3 * 2 * 3
    archs = set(space)
    assert len(archs) == len(space)
    for arch in archs:
        assert space.from_decisions(space.to_decisions(arch)) == arch
    with pytest.raises(NasboxError, match="has 8 nodes; this space has 3"):
        space.to_decisions(DARTS_V2)


def test_the_language_model_is_tied_and_carries_its_state():
    space = get_space("rnn")
    torch.manual_seed(0)
    network = space.build(DARTS_V2, num_classes=11, hidden=16, layers=2)
    assert network.decoder.weight is network.embedding.weight
    tokens = torch.randint(11, (6, 3))
    logits, hidden = network(tokens)
    assert logits.shape == (6, 3, 11) and hidden.shape == (2, 3, 16)
    # Running the sequence in two chunks with the carried state gives the same logits.
    first, state = network(tokens[:4])
    second, _ = network(tokens[4:], state)
    assert torch.allclose(torch.cat([first, second]), logits, atol=1e-6)
    parameters = sum(p.numel() for p in network.parameters())
    cell = 2 * (16 * 32 * 2 + 8 * 16 * 32)
    assert parameters == 11 * 16 + 11 + cell  # one embedding matrix, the decoder's bias


def test_dropout_acts_in_training_only():
    torch.manual_seed(0)
    network = get_space("rnn").build(
        DARTS_V2, num_classes=5, hidden=8, dropout_input=0.5, dropout_hidden=0.5, dropout_output=0.5
    )
    tokens = torch.randint(5, (4, 2))
    network.eval()
    assert torch.equal(network(tokens)[0], network(tokens)[0])
    network.train()
    assert not torch.equal(network(tokens)[0], network(tokens)[0])
