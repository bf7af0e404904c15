import pytest
import torch

from nasbox.spaces import NASNET_A, get_space
from nasbox.train import DropPath, ScheduledDropPath


def test_probability_grows_linearly_from_zero_to_final():
    schedule = ScheduledDropPath(0.4, total_steps=100)
    assert [schedule.probability(s) for s in (0, 25, 50, 100, 150)] == pytest.approx(
        [0.0, 0.1, 0.2, 0.4, 0.4]
    )


def test_masks_are_per_sample_and_survivors_are_rescaled():
    torch.manual_seed(0)
    drop = DropPath(0.5).train()
    x = torch.ones(400, 3, 4, 4)
    y = drop(x)
    per_sample = y.flatten(1)
    # every sample is either dropped entirely or kept entirely, scaled by 1 / keep
    assert set(per_sample.unique().tolist()) == {0.0, 2.0}
    assert torch.all(per_sample.min(1).values == per_sample.max(1).values)
    dropped = (per_sample[:, 0] == 0).float().mean().item()
    assert 0.4 < dropped < 0.6
    assert y.mean().item() == pytest.approx(1.0, abs=0.15)


def test_nothing_is_dropped_at_evaluation():
    drop = DropPath(0.9).eval()
    x = torch.randn(8, 2, 3, 3)
    assert torch.equal(drop(x), x)


def test_schedule_reaches_every_path_of_a_nasnet():
    network = get_space("nasnet").build(NASNET_A, channels=4)
    paths = [m for m in network.modules() if isinstance(m, DropPath)]
    # NASNet-A: 8 non-identity ops per normal cell, 9 per reduction cell; 3 + 2 cells
    assert len(paths) == 3 * 8 + 2 * 9
    assert ScheduledDropPath(0.3, 10).apply(network, 5) == pytest.approx(0.15)
    assert all(m.p == pytest.approx(0.15) for m in paths)


def test_cutout_zeroes_one_square_per_image_clipped_at_the_border():
    from nasbox.train import augment, cutout

    images = torch.ones(200, 3, 12, 12)
    out = cutout(images, 4, torch.Generator().manual_seed(0))
    zeros = (out[:, 0] == 0).sum((1, 2))
    assert zeros.max() == 16 and zeros.min() >= 4  # a corner keeps at least a 2x2 quarter
    assert torch.equal(out[:, 0], out[:, 2])  # the same square in every channel
    again = cutout(images, 4, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    assert augment(images, torch.Generator().manual_seed(1), 0).shape == images.shape
