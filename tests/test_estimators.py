import math
import re

import numpy as np
import pytest
import torch
from torch import nn

from nasbox.data import ImageData, load_text
from nasbox.errors import NasboxError
from nasbox.estimators import EstimatorContext, get_estimator
from nasbox.estimators.cost import count_multiply_adds
from nasbox.estimators.jacov import EPSILON, jacov_score
from nasbox.estimators.naswot import _overlap, naswot_score
from nasbox.spaces import get_space

CELL = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def tiny_data(n: int = 32, channels: int = 3, size: int = 8) -> ImageData:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, channels, size, size), dtype=np.uint8)
    return ImageData("tiny", images, rng.integers(0, 4, size=n))


def reference_naswot(network: nn.Module, images: torch.Tensor) -> float:
    """The paper's definition, literally: one c c^T + (1-c)(1-c)^T per ReLU module."""
    kernel = np.zeros((len(images), len(images)))

    def hook(_module, inputs, _output):
        codes = (inputs[0].reshape(len(images), -1) > 0).double().numpy()
        kernel[:] += codes @ codes.T + (1 - codes) @ (1 - codes).T

    handles = [m.register_forward_hook(hook) for m in network.modules() if isinstance(m, nn.ReLU)]
    network.train()
    with torch.no_grad():
        network(images)
    for handle in handles:
        handle.remove()
    return float(np.linalg.slogdet(kernel)[1])


@pytest.fixture
def space():
    return get_space("nb201")


def small_context(space, **kwargs) -> EstimatorContext:
    options = {"channels": 4, "cells_per_stage": 1}
    return EstimatorContext(space, tiny_data(), batch_size=16, build_options=options, **kwargs)


def test_naswot_equals_the_per_relu_definition(space):
    context = small_context(space, channels_last=False)
    images, _ = context.data.batch(16, seed=0)
    network = context.build(space.parse(CELL))
    assert naswot_score(network, images) == pytest.approx(reference_naswot(network, images), 1e-9)


def test_naswot_channels_last_gives_the_same_score(space):
    cell = space.parse(CELL)
    plain = get_estimator("naswot", small_context(space, channels_last=False))(cell)
    fast = get_estimator("naswot", small_context(space))(cell)
    assert fast == pytest.approx(plain, rel=1e-6)


def test_naswot_uses_no_gradients(space):
    context = small_context(space)
    network = context.build(space.parse(CELL))
    naswot_score(network, context.data.batch(16, 0)[0])
    assert all(p.grad is None for p in network.parameters())


def test_naswot_leaves_the_network_as_it_was(space):
    """Scoring reads a network; its BatchNorm running averages and settings stay untouched."""
    context = small_context(space)
    network = context.build(space.parse(CELL))
    before = {name: value.clone() for name, value in network.state_dict().items()}
    naswot_score(network, context.data.batch(16, 0)[0])
    after = network.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)
    batch_norms = [m for m in network.modules() if isinstance(m, nn.BatchNorm2d)]
    assert batch_norms and all(m.track_running_stats for m in batch_norms)


def test_naswot_is_seeded(space):
    cell = space.parse(CELL)
    first = get_estimator("naswot", small_context(space, seed=1))(cell)
    assert get_estimator("naswot", small_context(space, seed=1))(cell) == first
    assert get_estimator("naswot", small_context(space, seed=2))(cell) != first


def test_singular_kernel_scores_minus_infinity(space):
    network = space.build(space.parse(CELL), channels=4, cells_per_stage=1)
    identical = torch.randn(1, 3, 8, 8).repeat(8, 1, 1, 1)
    assert naswot_score(network, identical) == -math.inf


def test_overlap_matches_float_product():
    codes = torch.rand(16, 200) > 0.5
    expected = codes.double() @ codes.double().T
    assert torch.equal(_overlap(codes).double(), expected)
    assert torch.equal(_overlap(codes.T.contiguous().T).double(), expected)


def test_jacov_matches_formula_on_a_linear_network():
    torch.manual_seed(0)
    network = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    images = torch.randn(5, 3, 2, 2)
    # Every sample has the same Jacobian, so the correlation matrix is all ones: eigenvalues 5, 0...
    expected = -(math.log(5 + EPSILON) + 1 / (5 + EPSILON)) - 4 * (math.log(EPSILON) + 1 / EPSILON)
    # The identical Jacobians make corrcoef exactly ones; allow float rounding in eigenvalues.
    assert jacov_score(network, images) == pytest.approx(expected, rel=1e-3)


def test_jacov_of_a_constant_network_is_minus_infinity(space):
    context = small_context(space)
    estimator = get_estimator("jacov", context)
    assert estimator(space.parse("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")) == -math.inf
    assert math.isfinite(estimator(space.parse(CELL)))


def test_params_and_flops(space):
    context = EstimatorContext(space)
    cell = space.parse(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    )
    assert get_estimator("params", context)(cell) == pytest.approx(0.802426)
    conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 4 * 4, 2))
    assert count_multiply_adds(conv, (3, 4, 4)) == 8 * 16 * 3 * 9 + 128 * 2
    assert get_estimator("flops", context)(cell) > 0


def test_estimator_errors(space):
    with pytest.raises(NasboxError, match="unknown estimator 'nope'"):
        get_estimator("nope", EstimatorContext(space))
    with pytest.raises(NasboxError, match=r"unknown estimator 'naswt' \(did you mean 'naswot'\?\)"):
        get_estimator("naswt", EstimatorContext(space))
    with pytest.raises(NasboxError, match="needs data"):
        get_estimator("naswot", EstimatorContext(space))
    with pytest.raises(NasboxError, match="takes no ':' argument"):
        get_estimator("params:x", EstimatorContext(space))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "space",
            "nb201",
            "EstimatorContext needs a SearchSpace, got str: pass get_space('nb201')",
        ),
        ("data", "digits", "space nb201 builds image networks, got str: pass load_data(...)"),
        ("data", "text", "space nb201 builds image networks, got TextData: pass load_data(...)"),
        ("benchmark", "table.csv", "benchmark must be a TabularBenchmark, got str"),
        ("seed", 1.5, "EstimatorContext seed must be a whole number, got 1.5 (float)"),
        ("seed", True, "EstimatorContext seed must be a whole number, got True (bool)"),
        ("seed", 2**40, "EstimatorContext seed must be at most 4,294,967,295"),
        ("batch_size", np.float32(8), "batch_size must be a whole number, got np.float32(8.0)"),
        ("batch_size", 0, "EstimatorContext batch_size must be at least 1, got 0"),
        ("latency_batch", 0, "EstimatorContext latency_batch must be at least 1, got 0"),
        ("precision", "fp16", "precision must be 'fp32' or 'bf16', got 'fp16'"),
        ("device", "gpu", "EstimatorContext device 'gpu' is not a torch device; use one of: cpu"),
        ("device", None, "EstimatorContext device None is not a torch device; use one of: cpu"),
        ("device", "cuda:99", "device 'cuda:99' is not available on this machine; use one of: cpu"),
        ("device", "meta", "device 'meta' is not available on this machine; use one of: cpu"),
    ],
)
def test_a_wrong_context_field_is_refused_when_the_context_is_made(field, value, message, tmp_path):
    # Each failed at the first score inside torch or numpy, or was used as is (fp16 ran in fp32).
    space = get_space("nb201")
    if value == "text":
        (tmp_path / "corpus.txt").write_text("to be or not to be " * 50)
        value = load_text(str(tmp_path / "corpus.txt"))
    with pytest.raises(NasboxError, match=re.escape(message)):
        EstimatorContext(**{"space": space, "data": tiny_data(), field: value})
    context = EstimatorContext(space, tiny_data(), seed=np.int64(3), batch_size=np.int64(8))
    assert context.seed == 3 and context.batch_size == 8


def test_a_batch_size_above_the_training_images_is_cut_with_a_note(capsys):
    # The cut was silent from Python; the CLI printed this note.
    context = EstimatorContext(get_space("nb201"), tiny_data(32), batch_size=64)
    assert context.batch_size == 32
    assert capsys.readouterr().err == (
        "nasbox: note: EstimatorContext batch_size 64 is more than the 32 training images of "
        "tiny; using 32\n"
    )
    assert EstimatorContext(get_space("nb201"), tiny_data(32), batch_size=32).batch_size == 32
    assert capsys.readouterr().err == ""


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA works on this machine")
def test_cuda_without_cuda_is_refused_when_the_context_is_made():
    with pytest.raises(NasboxError, match=re.escape("device 'cuda' is not available on this")):
        EstimatorContext(get_space("nb201"), device="cuda")
    assert EstimatorContext(get_space("nb201"), device=torch.device("cpu")).device == "cpu"


@pytest.mark.parametrize(
    ("spec", "space", "message"),
    [
        (
            None,
            "nb201",
            "get_estimator needs a name such as 'naswot' or 'table:valid_acc', got NoneType",
        ),
        ("naswot", None, "get_estimator needs an EstimatorContext, got NB201Space"),
        (
            "naswot",
            "rnn",
            "estimator 'naswot' scores image networks and space rnn builds text networks; use it with space amoeba or darts",
        ),
        ("params", "rnn", "estimator 'params' scores image networks and space rnn"),
        (
            "lm:5",
            "nb201",
            "estimator 'lm' scores text networks and space nb201 builds image networks; use it with space rnn",
        ),
    ],
)
def test_get_estimator_refuses_what_it_cannot_score(spec, space, message):
    # Each failed with an AttributeError, or at the first score inside torch (naswot on rnn).
    context = EstimatorContext(get_space(space)) if space else get_space("nb201")
    with pytest.raises(NasboxError, match=re.escape(message)):
        get_estimator(spec, context)


def test_copies_of_an_image_do_not_make_naswot_minus_infinity(capsys):
    """Two copies of one image in the scoring minibatch (a file saved twice) made the kernel
    singular: NASWOT was -inf for every architecture. Copies are replaced by other images."""
    data = tiny_data(24)
    data.x_train[12:] = data.x_train[:12]  # every image twice: 12 distinct
    images, _ = data.batch(16, seed=0)
    assert len({bytes(image.numpy().tobytes()) for image in images}) == len(images) == 12
    assert "only 12 training images are distinct" in capsys.readouterr().err
    context = EstimatorContext(get_space("nb201"), data, batch_size=16)
    assert math.isfinite(get_estimator("naswot", context)(get_space("nb201").parse(CELL)))


def test_a_minibatch_without_copies_is_the_plain_seeded_draw():
    """Scores measured before copies were replaced keep their minibatch."""
    data = tiny_data(40)
    index = np.sort(np.random.default_rng(3).choice(40, size=16, replace=False))
    images, labels = data.batch(16, seed=3)
    assert torch.equal(images, data.normalize(data.x_train[index]))
    assert labels.tolist() == data.y_train[index].tolist()
