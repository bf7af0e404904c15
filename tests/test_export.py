"""`nasbox export`: every space's network round-trips through ONNX and TorchScript within 1e-4,
a trained checkpoint exports its trained weights, and bad input is one line with exit status 2."""

import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import nasbox.export
from nasbox.cli import main
from nasbox.export import FORMATS, Checkpoint
from nasbox.spaces import SPACES, get_space

TINY = ["--cells", "1", "--filters", "16", "--input", "16"]
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}


@pytest.fixture(autouse=True)
def _one_thread():
    """Exports do not depend on threads, and on a machine shared with other processes two
    threads wait on each other: the cell networks' tests took 5 to 15 s each instead of 1."""
    torch.set_num_threads(1)


def run_exported(path: Path, images: torch.Tensor) -> torch.Tensor:
    """The logits the exported file computes: onnxruntime for .onnx, TorchScript for .pt."""
    if path.suffix == ".onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run(None, {"images": images.numpy()})[0])
    with torch.no_grad():
        return torch.jit.load(str(path))(images)


def tiny_arch(name: str) -> str:
    """A sampled architecture: it varies by space where the default might not (nats-size's
    default is the widest network), and is small."""
    space = get_space(name)
    return space.format(space.sample(np.random.default_rng(0)))


def exit_status(args: list[str]) -> int:
    """`main`'s status, also for usage errors, which argparse ends with SystemExit."""
    try:
        return main(args)
    except SystemExit as stop:
        return int(stop.code)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("nasbox: error:") and err.count("\n") == 1, err
    return err


IMAGE_SPACES = [name for name in SPACES.names() if SPACES.get(name).modality == "image"]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", IMAGE_SPACES)  # text spaces are refused (test_space_contract)
def test_every_image_space_round_trips_within_1e4(name, fmt, tmp_path, capsys):
    out = tmp_path / f"net{SUFFIX[fmt]}"
    arch = tiny_arch(name)
    assert main(["export", "--space", name, "--arch", arch, *TINY, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "parameters  " in printed and f"wrote       {out}" in printed
    assert "max difference" in printed
    space = get_space(name)
    options, _ = space.network_options(space.parse(arch), 1, 16)
    if space.has_auxiliary_head:
        options["stem"] = "cifar"
    torch.manual_seed(0)
    network = space.build(space.parse(arch), num_classes=10, **options).eval()
    for batch, side in ((4, 16), (1, 20)):  # the batch and the image side are dynamic
        images = torch.randn(batch, 3, side, side)
        with torch.no_grad():
            expected = network(images)
        assert torch.allclose(run_exported(out, images), expected, rtol=0, atol=1e-4)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """One epoch of nb201 1@8 on 24 one-channel 12x12 images of 3 classes (not the defaults,
    so export must read channels and classes from the checkpoint)."""
    root = tmp_path_factory.mktemp("trained")
    rng = np.random.default_rng(0)
    data = root / "gray.npz"
    np.savez(
        data,
        x_train=rng.integers(0, 256, size=(24, 1, 12, 12), dtype=np.uint8),
        y_train=np.arange(24) % 3,
        x_test=rng.integers(0, 256, size=(6, 1, 12, 12), dtype=np.uint8),
        y_test=np.arange(6) % 3,
    )
    args = ["train", "--space", "nb201", "--cells", "1", "--filters", "8", "--epochs", "1"]
    args += ["--data", f"npz:{data}", "--batch-size", "8", "--out", str(root / "run"), "--quiet"]
    assert main(args) == 0
    return root / "run"


def trained_network(run: Path) -> torch.nn.Module:
    settings = json.loads((run / "settings.json").read_text())
    space = get_space(settings["space"])
    network = space.build(
        space.parse(settings["arch"]), num_classes=3, in_channels=1, **settings["options"]
    )
    network.load_state_dict(torch.load(run / "checkpoint.pt", weights_only=True)["network"])
    return network.eval()


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_trained_checkpoint_exports_the_trained_network(fmt, trained_run, tmp_path, capsys):
    out = tmp_path / f"trained{SUFFIX[fmt]}"
    assert (
        main(["export", "--checkpoint", str(trained_run), "--input", "12", "--out", str(out)]) == 0
    )
    printed = capsys.readouterr().out
    assert "(trained 1 epoch)" in printed and "N x 1 x H x W" in printed and "3 classes" in printed
    images = torch.randn(5, 1, 12, 12)
    with torch.no_grad():
        expected = trained_network(trained_run)(images)
    exported = run_exported(out, images)
    assert torch.allclose(exported, expected, rtol=0, atol=1e-4)
    torch.manual_seed(0)
    fresh = get_space("nb201").build(
        get_space("nb201").parse(get_space("nb201").default_arch),
        num_classes=3,
        in_channels=1,
        cells_per_stage=1,
        channels=2,
    )
    with torch.no_grad():
        assert not torch.allclose(exported, fresh.eval()(images), atol=1e-3)


def test_a_trained_checkpoint_says_how_to_normalise_its_images(trained_run, tmp_path, capsys):
    """The network expects images normalised with the training images' per-channel mean and
    std; the export said only 'normalised like the training data', and nothing recorded them."""
    out = str(tmp_path / "net.onnx")
    assert main(["export", "--checkpoint", str(trained_run), "--input", "12", "--out", out]) == 0
    lines = capsys.readouterr().out.splitlines()
    line = next(line for line in lines if line.startswith("normalise   "))
    assert "(pixels / 255 - mean) / std per channel" in line
    mean, std = (float(number) for number in re.findall(r"\(([\d.e-]+)\)", line))
    pixels = np.load(trained_run.parent / "gray.npz")["x_train"] / 255
    assert mean == pytest.approx(pixels.mean(), rel=1e-5)
    assert std == pytest.approx(pixels.std(), rel=1e-5)


def test_a_nasnet_checkpoint_exports_without_its_auxiliary_head(tmp_path, capsys):
    space = get_space("nasnet")
    arch = space.parse(space.default_arch)
    options = {"cells": 1, "filters": 24, "stem": "cifar", "auxiliary": True, "dropout": 0.0}
    network = space.build(arch, num_classes=4, **options)
    run = tmp_path / "run"
    run.mkdir()
    description = f"nasnet {space.format(arch)} {options}"
    torch.save({"network": network.state_dict(), "description": description}, run / "checkpoint.pt")
    settings = {"space": "nasnet", "arch": space.format(arch), "cells": 1, "filters": 24}
    (run / "settings.json").write_text(json.dumps({**settings, "options": options}))
    out = tmp_path / "nasnet.onnx"
    checkpoint = str(run / "checkpoint.pt")
    assert main(["export", "--checkpoint", checkpoint, "--input", "16", "--out", str(out)]) == 0
    assert "without an auxiliary head" in capsys.readouterr().out
    images = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = network.eval()(images)
    assert torch.allclose(run_exported(out, images), expected, rtol=0, atol=1e-4)


def test_a_fresh_network_names_no_training_data(tmp_path, capsys):
    """A freshly initialised network's input line said 'normalised like the training data',
    though it was never trained on any."""
    assert main(["export", *TINY, "--out", str(tmp_path / "net.pt")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "input       N x 3 x H x W (any N, H, W); 10 classes" in lines


def test_the_format_follows_the_suffix_and_an_existing_out_needs_overwrite(tmp_path, capsys):
    out = tmp_path / "net.pt"
    assert main(["export", *TINY, "--out", str(out)]) == 0
    assert "TorchScript" in capsys.readouterr().out
    first = out.read_bytes()
    assert main(["export", *TINY, "--out", str(out), "--seed", "1"]) == 2
    assert "already exists" in one_error_line(capsys)
    assert out.read_bytes() == first
    assert main(["export", *TINY, "--out", str(out), "--seed", "1", "--overwrite"]) == 0
    assert out.read_bytes() != first


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--out", "net.bin"], "cannot tell the format"),
        (["--out", "net.onnx", "--format", "tflite"], "invalid choice: 'tflite'"),
        (["--out", "net.onnx", "--checkpoint", "nowhere/checkpoint.pt"], "file not found"),
        (["--out", "net.onnx", "--checkpoint", ""], "--checkpoint is empty"),
        (["--out", "net.onnx", "--input", "4"], "--input must be at least 8"),
        (["--out", "net.onnx", "--input", "5000"], "--input must be at most 1024, got 5000"),
        (["--out", "net.onnx", "--classes", "1"], "--classes must be at least 2"),
        (["--out", "net.onnx", "--classes", "0"], "--classes must be at least 2"),
        (["--out", "net.pt", "--in-channels", "0"], "--in-channels must be at least 1"),
        (["--out", "net.onnx", "--cells", "1", "--filters", "2800"], "ONNX file holds at most"),
        (["--out", "net.pt", "--classes", str(10**12)], "needs about 726,431.6 GiB, and"),
    ],
)
def test_bad_input_is_one_line(extra, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert exit_status(["export", *extra]) == 2
    assert message in one_error_line(capsys)
    assert not any(tmp_path.glob("net*"))


def test_a_checkpoint_of_another_network_is_refused(trained_run, tmp_path, capsys):
    out = str(tmp_path / "net.onnx")
    other = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|avg_pool_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    checkpoint = ["export", "--checkpoint", str(trained_run / "checkpoint.pt"), "--out", out]
    assert main([*checkpoint, "--arch", other]) == 2  # same weights, another op without any
    assert "was trained as" in one_error_line(capsys)
    assert main([*checkpoint, "--space", "nasnet"]) == 2  # not "malformed nasnet genotype"
    assert "was trained in space nb201, not nasnet; pass --space nb201" in one_error_line(capsys)
    assert main([*checkpoint, "--filters", "16"]) == 2
    err = one_error_line(capsys)
    assert "does not fit the network" in err and "(16, 1, 3, 3)" not in err
    assert "stem.0.weight is (2, 1, 3, 3) in it but (4, 1, 3, 3) in the network" in err
    assert main([*checkpoint, "--in-channels", "3"]) == 2
    assert "does not fit the network" in one_error_line(capsys)
    assert not Path(out).exists()


@pytest.mark.parametrize("name", ["checkpoint.pt", "settings.json", "history.csv"])
def test_an_out_in_place_of_the_runs_files_is_refused_even_with_overwrite(
    name, trained_run, tmp_path, capsys
):
    """`--out RUN/checkpoint.pt --overwrite` replaced the trained weights with the export: the
    run could neither be resumed nor exported again."""
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    before = (run / name).read_bytes()
    args = ["export", "--checkpoint", str(run), "--format", "torchscript", "--overwrite"]
    assert main([*args, "--out", str(run / name)]) == 2
    assert f"is the same file as {'--checkpoint' if name == 'checkpoint.pt' else 'the run'}" in (
        one_error_line(capsys)
    )
    assert (run / name).read_bytes() == before
    assert main([*args, "--out", str(run / "net.pt")]) == 0  # beside them is fine


def test_a_run_still_training_exports_its_last_epoch_and_says_so(trained_run, tmp_path, capsys):
    """A run in its first epoch was 'file not found (expected the checkpoint.pt of a `nasbox
    train` run)', and a later epoch's export did not say more epochs were coming."""
    from filelock import FileLock

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    args = ["export", "--checkpoint", str(run), "--input", "12"]
    with FileLock(run / ".nasbox.lock"):  # as the training nasbox process holds it
        assert main([*args, "--out", str(tmp_path / "net.pt")]) == 0
        assert "(trained 1 epoch so far; the run is still training)" in capsys.readouterr().out
        (run / "checkpoint.pt").unlink()
        assert main([*args, "--out", str(tmp_path / "first.pt")]) == 2
        assert "the run is still training its first epoch" in one_error_line(capsys)
    assert main([*args, "--out", str(tmp_path / "first.pt")]) == 2
    assert "file not found" in one_error_line(capsys)


def test_a_corrupt_checkpoint_is_one_line(tmp_path, capsys):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    out = str(tmp_path / "net.onnx")
    assert main(["export", "--checkpoint", str(tmp_path), "--out", out]) == 2
    assert "not a readable checkpoint" in one_error_line(capsys)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_checkpoint_with_non_finite_weights_says_the_training_diverged(
    bad, trained_run, tmp_path, capsys
):
    """NaN weights were exported and refused by the check as 'outputs differ ... by nan'."""
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["network"]["stem.0.weight"][0, 0, 0, 0] = bad
    torch.save(state, run / "checkpoint.pt")
    out = tmp_path / "net.onnx"
    assert main(["export", "--checkpoint", str(run), "--out", str(out)]) == 2
    assert (
        f"--checkpoint {run / 'checkpoint.pt'}: NaN or infinite values in 1 of its 129 weight "
        "tensors (stem.0.weight first): the training diverged, and the network would output "
        "NaN; train it again with a lower --lr than the run's 0.025"
    ) in one_error_line(capsys)
    assert not out.exists()


def test_onnx_without_the_export_extra_names_the_pip_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert main(["export", *TINY, "--out", str(tmp_path / "net.onnx")]) == 2
    assert "pip install 'nasbox[export]'" in one_error_line(capsys)


def test_an_export_that_fails_its_check_leaves_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(nasbox.export, "TOLERANCE", -1.0)
    assert main(["export", *TINY, "--out", str(tmp_path / "net.onnx")]) == 2
    assert "was not written" in one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_reads_channels_and_classes(trained_run):
    assert Checkpoint.read(trained_run).channels_and_classes() == (1, 3)


def test_a_run_on_named_classes_says_which_output_is_which(tmp_path, capsys):
    """Folder data's classes are its sorted folder names: the export did not say which output
    index was which, so a deployed network's answers could not be read."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("dog", "cat", "fish"):
        for index in range(5):
            pixels = rng.integers(0, 256, size=(12, 12, 3), dtype=np.uint8)
            (tmp_path / "pets" / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(tmp_path / "pets" / name / f"{index}.png")
    run = tmp_path / "run"
    args = ["train", "--space", "nb201", "--cells", "1", "--filters", "8", "--epochs", "1"]
    args += ["--data", f"folder:{tmp_path / 'pets'}", "--batch-size", "8", "--out", str(run)]
    assert main([*args, "--quiet"]) == 0
    out = str(tmp_path / "net.onnx")
    assert main(["export", "--checkpoint", str(run), "--input", "12", "--out", out]) == 0
    assert "outputs     0 cat, 1 dog, 2 fish\n" in capsys.readouterr().out


@pytest.mark.parametrize("space", [[], ["--space", "rnn"], ["--space", "nb201"]])
def test_a_language_model_checkpoint_says_export_is_for_images(space, corpus, tmp_path, capsys):
    """With --space nb201 an rnn run's checkpoint was 'pass --space rnn', which export then
    refused as a text space: the advice looped."""
    run = tmp_path / "lm"
    train = ["train", "--quiet", "--space", "rnn", "--filters", "8", "--epochs", "1"]
    train += ["--batch-size", "8", "--bptt", "10", "--data", f"text:{corpus}", "--out", str(run)]
    assert main(train) == 0
    capsys.readouterr()
    out = tmp_path / "lm.onnx"
    assert main(["export", "--checkpoint", str(run), *space, "--out", str(out)]) == 2
    err = one_error_line(capsys)
    assert "holds a language model (space rnn)" in err and "--space" not in err
    assert "writes image classifiers only" in err and "weights_only=True)['network']" in err
    assert not out.exists()
