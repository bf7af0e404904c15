import json
import sys

import numpy as np
import pytest
import torch

from nasbox.errors import NasboxError
from nasbox.estimators.cost import count_multiply_adds, count_parameters
from nasbox.spaces import NASNET_A, get_space
from nasbox.spaces.nasnet import OPS

SPACE = get_space("nasnet")


def test_nasnet_a_round_trips_through_string_and_json():
    text = SPACE.format(NASNET_A)
    assert text.startswith("normal: sep_conv_5x5~1 + sep_conv_3x3~0 |")
    assert SPACE.parse(text) == NASNET_A
    assert SPACE.parse(json.dumps(NASNET_A.to_json())) == NASNET_A
    assert SPACE.parse("NASNet-A") == NASNET_A
    assert NASNET_A.to_json()["normal"]["concat"] == [0, 2, 3, 4, 5, 6]


def test_decision_sequence_has_two_times_five_b_choices():
    sizes = SPACE.decision_sizes()
    assert len(sizes) == 2 * 5 * 5
    assert sizes[:5] == [2, 2, 13, 13, 2] and sizes[20:25] == [6, 6, 13, 13, 2]
    assert len(OPS) == 13
    assert len(get_space("nasnet").__class__(blocks=3).decision_sizes()) == 30
    assert len(SPACE) == sys.maxsize  # 10^50-odd sequences, capped where len() must stop


def test_sampling_is_seeded_valid_and_round_trips():
    first = [SPACE.sample(np.random.default_rng(3)) for _ in range(3)]
    again = [SPACE.sample(np.random.default_rng(3)) for _ in range(3)]
    assert first == again
    rng = np.random.default_rng(0)
    for _ in range(20):
        arch = SPACE.sample(rng)
        assert SPACE.from_decisions(SPACE.to_decisions(arch)) == arch
        assert SPACE.parse(SPACE.format(arch)) == arch
        # the default output is exactly the hidden states no block consumed
        used = {i for block in arch.normal.blocks for i in block.inputs}
        assert set(arch.normal.outputs) == set(range(7)) - used


def test_mutation_changes_exactly_one_decision():
    rng = np.random.default_rng(1)
    arch = SPACE.sample(rng)
    for _ in range(20):
        child = SPACE.mutate(arch, rng)
        before, after = SPACE.to_decisions(arch), SPACE.to_decisions(child)
        assert sum(a != b for a, b in zip(before, after, strict=True)) == 1
        arch = child


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("normal: sep_conv_3x3~0 + identity~1", "no reduce cell"),
        (
            "normal: sep_conv_3x3~0 + identity~1 | conv_3x3~4 + identity~0 ; reduce: identity~0 + identity~1",
            "normal cell, block 2: hidden state 4 out of range; block 2 may read 0..2",
        ),
        (
            "normal: sep_conv_3x3~0 + identity~1 ; reduce: identity~0 + conv_9x9~1",
            "reduce cell, block 1: unknown operation 'conv_9x9'",
        ),
        (
            "normal: sep_conv_3x3~0 identity~1 ; reduce: identity~0 + identity~1",
            "normal cell, block 1: 'sep_conv_3x3~0 identity~1' must look like",
        ),
        ("banana", "malformed nasnet genotype"),
        (
            '{"normal": {"blocks": [{"inputs": [0, 9], "ops": ["identity", "identity"]}]}, "reduce": {"blocks": []}}',
            "normal cell, block 1: hidden state 9",
        ),
    ],
)
def test_bad_genotypes_name_the_block_and_the_problem(text, message):
    with pytest.raises(NasboxError, match=message.replace("(", r"\(")) as err:
        SPACE.parse(text)
    assert "\n" not in str(err.value)


def test_networks_run_for_any_cells_filters_input_and_classes():
    rng = np.random.default_rng(2)
    arch = SPACE.sample(rng)
    concat_arch = SPACE.parse(
        "normal: conv_1x7_7x1~1 & dil_conv_3x3~0 | max_pool_7x7~2 + conv_1x3_3x1~1 ; "
        "reduce: identity~0 & conv_1x1~1 | max_pool_5x5~2 + conv_3x3~0"
    )
    torch.manual_seed(0)
    for genotype in (arch, concat_arch, NASNET_A):
        network = SPACE.build(genotype, num_classes=7, in_channels=1, channels=4)
        assert network(torch.randn(2, 1, 9, 9)).shape == (2, 7)
    imagenet = SPACE.build(NASNET_A, num_classes=5, cells=1, filters=48, stem="imagenet")
    assert imagenet.penultimate_filters == 48
    assert imagenet(torch.randn(1, 3, 45, 45)).shape == (1, 5)


def test_auxiliary_head_only_in_training():
    network = SPACE.build(NASNET_A, num_classes=3, channels=4, auxiliary=True)
    logits, aux = network(torch.randn(2, 3, 16, 16))
    assert logits.shape == aux.shape == (2, 3)
    network.eval()
    assert network(torch.randn(2, 3, 16, 16)).shape == (2, 3)


def _meta_counts(cells, filters, size, stem):
    with torch.device("meta"):
        network = SPACE.build(
            NASNET_A,
            cells=cells,
            filters=filters,
            stem=stem,
            num_classes=10 if size == 32 else 1001,
        )
    return count_parameters(network), count_multiply_adds(network, (3, size, size))


@pytest.mark.integration
@pytest.mark.parametrize(
    ("cells", "filters", "size", "params_m", "madds_m"),
    [(6, 768, 32, 3.3, None), (4, 1056, 224, 5.3, 564.0), (6, 4032, 331, 88.9, 23800.0)],
)
def test_nasnet_a_matches_the_paper_within_three_percent(cells, filters, size, params_m, madds_m):
    params, madds = _meta_counts(cells, filters, size, "cifar" if size == 32 else "imagenet")
    assert params / 1e6 == pytest.approx(params_m, rel=0.03)
    if madds_m is not None:
        assert madds / 1e6 == pytest.approx(madds_m, rel=0.03)
