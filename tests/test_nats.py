"""The NATS-Bench size space: widths as the benchmark's network uses them."""

import pytest
import torch

from nasbox.errors import NasboxError
from nasbox.spaces import get_space


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("8:16:32:64", "expected 5 widths"),
        ("8:16:32:64:65", "layer 5: width '65'"),
        ("8:16:x:64:64", "layer 3: width 'x'"),
        ("", "expected 5 widths"),
    ],
)
def test_malformed_widths_name_the_problem(text, message):
    with pytest.raises(NasboxError, match=message):
        get_space("nats-size").parse(text)


def test_each_layer_has_its_width():
    space = get_space("nats-size")
    network = space.build(space.parse("8:16:24:32:40"), num_classes=10)
    assert network.stem[0].out_channels == 8
    widths = []
    x = network.stem(torch.randn(1, 3, 16, 16))
    for layer in network.cells:
        x = layer(x)
        widths.append(x.shape[1])
    assert widths == [8, 16, 24, 32, 40]
    assert x.shape[-1] == 4, "two reductions halve 16 pixels twice"
    assert network.classifier.in_features == 40


def test_wider_layers_have_more_parameters():
    space = get_space("nats-size")
    counts = [
        sum(p.numel() for p in space.build(space.parse(text)).parameters())
        for text in ("8:8:8:8:8", "8:8:8:8:64", "64:64:64:64:64")
    ]
    assert counts == sorted(counts) and len(set(counts)) == 3


def test_cells_other_than_one_are_refused():
    space = get_space("nats-size")
    with pytest.raises(NasboxError, match="one cell per stage"):
        space.network_options(space.parse(space.default_arch), 3, 64)
