import csv
import json
import signal
import subprocess
import sys

import numpy as np
import pytest

from nasbox.cli import main

TINY = ["--cells", "1", "--filters", "24"]


def test_describe_prints_parameters_and_multiply_adds(capsys):
    args = ["describe", "--space", "nasnet", "--arch", "nasnet-a", "--cells", "6"]
    assert main([*args, "--filters", "768", "--input", "32", "--classes", "10"]) == 0
    out = capsys.readouterr().out
    assert "parameters  3.328 M (3,328,234)" in out and "mult-adds" in out and "stem=cifar" in out
    assert main(["describe", "--space", "nasnet", "--arch", "nasnet-a", "--input", "224"]) == 0
    assert "stem=imagenet" in capsys.readouterr().out


def test_train_writes_history_checkpoint_and_resumes(tmp_path, tiny_npz, capsys):
    out = tmp_path / "run"
    args = ["train", "--space", "nasnet", "--arch", "nasnet-a", *TINY, "--data", f"npz:{tiny_npz}"]
    args += ["--batch-size", "16", "--cutout", "4", "--out", str(out), "--quiet", "--seed", "1"]
    assert main([*args, "--epochs", "1"]) == 0
    first = list(csv.DictReader((out / "history.csv").open()))
    assert len(first) == 1 and (out / "checkpoint.pt").is_file()
    assert (out / "history.png").stat().st_size > 1000
    assert main([*args, "--epochs", "1", "--resume"]) == 0  # nothing left to do
    assert main([*args, "--epochs", "2", "--resume"]) == 2  # another schedule: refused
    assert "other settings (epochs 1 -> 2)" in capsys.readouterr().err
    settings = json.loads((out / "settings.json").read_text())
    assert settings["arch"].startswith("normal: sep_conv_5x5~1")


def _tiny_training(tiny_npz) -> list[str]:
    base = [
        "train",
        "--space",
        "nb201",
        "--arch",
        "|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|nor_conv_1x1~1|skip_connect~2|",
    ]
    base += ["--cells", "1", "--filters", "16", "--data", f"npz:{tiny_npz}", "--epochs", "2"]
    return [*base, "--batch-size", "16", "--quiet"]


def _history(folder) -> list[dict]:
    rows = csv.DictReader((folder / "history.csv").open())
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def test_interrupted_training_resumes_where_it_stopped(tmp_path, tiny_npz, monkeypatch):
    import nasbox.train.trainer as trainer

    base = _tiny_training(tiny_npz)
    assert main([*base, "--out", str(tmp_path / "straight")]) == 0
    evaluate, calls = trainer.evaluate, []

    def interrupt_in_epoch_two(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return evaluate(*args)

    monkeypatch.setattr(trainer, "evaluate", interrupt_in_epoch_two)
    interrupted = tmp_path / "interrupted"
    assert main([*base, "--out", str(interrupted)]) == 130
    assert len(list(csv.DictReader((interrupted / "history.csv").open()))) == 1
    monkeypatch.setattr(trainer, "evaluate", evaluate)
    assert main([*base, "--out", str(interrupted), "--resume"]) == 0
    assert _history(interrupted) == _history(tmp_path / "straight")


def test_training_stopped_while_saving_an_epoch_resumes(tmp_path, tiny_npz, monkeypatch, capsys):
    """Ctrl-C while the first epoch's plot is drawn: its checkpoint is already saved, so the
    epoch is kept and --resume continues (before, history.csv without checkpoint.pt could
    neither be resumed nor started again)."""
    import nasbox.plotting as plotting

    base = _tiny_training(tiny_npz)
    assert main([*base, "--out", str(tmp_path / "straight")]) == 0
    new_figure = plotting.new_figure

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(plotting, "new_figure", interrupt)
    stopped = tmp_path / "stopped"
    assert main([*base, "--out", str(stopped)]) == 130
    assert "--resume" in capsys.readouterr().err.splitlines()[-1]
    monkeypatch.setattr(plotting, "new_figure", new_figure)
    assert main([*base, "--out", str(stopped), "--resume"]) == 0
    assert _history(stopped) == _history(tmp_path / "straight")


# A `nasbox train` process that SIGKILLs itself as it starts writing history.csv for the
# second time: after the checkpoint of epoch 2, before that epoch's history.csv and history.png.
KILLED_WRITING_HISTORY = """
import csv, os, signal, sys

from nasbox.cli import main


class KilledWhileWriting(csv.DictWriter):
    calls = 0

    def __init__(self, *args, **kwargs):
        KilledWhileWriting.calls += 1
        if KilledWhileWriting.calls == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        super().__init__(*args, **kwargs)


csv.DictWriter = KilledWhileWriting
sys.exit(main(sys.argv[1:]))
"""


def test_a_run_killed_after_its_last_checkpoint_gets_its_history_on_resume(tmp_path, tiny_npz):
    """Killed between the last epoch's checkpoint and its history: --resume had nothing left to
    train, said "history in history.csv", and history.csv and history.png lacked that epoch."""
    base = _tiny_training(tiny_npz)
    assert main([*base, "--out", str(tmp_path / "straight")]) == 0
    killed = tmp_path / "killed"
    process = subprocess.run(
        [sys.executable, "-c", KILLED_WRITING_HISTORY, *base, "--out", str(killed)],
        capture_output=True,
        timeout=120,
    )
    assert process.returncode == -signal.SIGKILL, process.stderr
    assert len(_history(killed)) == 1
    plot = (killed / "history.png").read_bytes()
    assert main([*base, "--out", str(killed), "--resume"]) == 0
    assert _history(killed) == _history(tmp_path / "straight")
    assert (killed / "history.png").read_bytes() != plot  # redrawn with epoch 2


def test_resume_refuses_other_data_and_keeps_the_run_s_settings(tmp_path, tiny_npz, capsys):
    """Images of the same shape and classes fit the checkpoint: they were taken, and settings.json
    then named them, as it named data whose network did not fit the checkpoint."""
    base = _tiny_training(tiny_npz)
    out = tmp_path / "run"
    assert main([*base, "--out", str(out), "--epochs", "1"]) == 0
    settings = (out / "settings.json").read_bytes()
    with np.load(tiny_npz) as arrays:
        fewer = {key: arrays[key][:32] for key in arrays.files}
    np.savez(tmp_path / "fewer.npz", **fewer)
    resumed = [*base, "--out", str(out), "--resume", "--data", f"npz:{tmp_path / 'fewer.npz'}"]
    assert main([*resumed, "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "on fewer (32 training and 10 test images of 3x8x8)" in err
    assert (out / "settings.json").read_bytes() == settings
    assert main([*base, "--out", str(out), "--resume", "--epochs", "1"]) == 0
    assert (out / "settings.json").read_bytes() == settings


def _stop_after_epoch_one(monkeypatch, base: list[str], out) -> None:
    """Train `base` (2 epochs) into `out` and stop with Ctrl-C right after epoch 1 is saved."""
    import nasbox.train.trainer as trainer

    saved = trainer.save_epoch

    def save_then_stop(*args):
        saved(*args)
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "save_epoch", save_then_stop)
    assert main([*base, "--out", str(out)]) == 130
    monkeypatch.setattr(trainer, "save_epoch", saved)


def test_resume_refuses_other_images_of_the_same_shape(tmp_path, tiny_npz, capsys, monkeypatch):
    """The description names the data and its shapes, not its content: the same file with other
    images of the same shape went on training on them."""
    base, out = _tiny_training(tiny_npz), tmp_path / "run"
    _stop_after_epoch_one(monkeypatch, base, out)
    capsys.readouterr()
    kept = {name: (out / name).read_bytes() for name in ("checkpoint.pt", "history.csv")}
    with np.load(tiny_npz) as arrays:
        other = {key: arrays[key] for key in arrays.files}
    other["x_train"] = 255 - other["x_train"]
    np.savez(tiny_npz, **other)
    assert main([*base, "--out", str(out), "--resume"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert f"trained on other data than --data npz:{tiny_npz} (same shape" in captured.err
    assert {name: (out / name).read_bytes() for name in kept} == kept


def test_a_checkpoint_written_before_data_digests_still_resumes(tmp_path, tiny_npz, monkeypatch):
    import torch

    base, out = _tiny_training(tiny_npz), tmp_path / "run"
    _stop_after_epoch_one(monkeypatch, base, out)
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    del state["data_digest"]
    torch.save(state, out / "checkpoint.pt")
    assert main([*base, "--out", str(out), "--resume"]) == 0
    assert [row["epoch"] for row in _history(out)] == ["1", "2"]


def test_resume_says_where_it_continues_and_when_the_run_is_complete(
    tmp_path, tiny_npz, monkeypatch, capsys
):
    """A resume of a finished run printed "training ..." as if it trained again."""
    base, out = _tiny_training(tiny_npz), tmp_path / "run"
    _stop_after_epoch_one(monkeypatch, base, out)
    capsys.readouterr()
    assert main([*base, "--out", str(out), "--resume"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("training ") and first.endswith("(resuming after epoch 1 of 2)")
    history = (out / "history.csv").read_text()
    assert main([*base, "--out", str(out), "--resume"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"the run in {out}/ is complete (epoch 2 of 2): nothing left to train"
    assert lines[1].startswith("epoch 2: test accuracy")
    assert (out / "history.csv").read_text() == history


def test_a_folder_in_use_is_refused_before_the_training_is_announced(tmp_path, tiny_npz, capsys):
    """It printed "training ...; results in busy/" and then that busy/ was in use."""
    from filelock import FileLock

    base, busy = _tiny_training(tiny_npz), tmp_path / "busy"
    busy.mkdir()
    with FileLock(busy / ".nasbox.lock"):  # as a running nasbox process holds it
        assert main([*base, "--out", str(busy)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert f"--out {busy} is in use by another nasbox process; wait" in captured.err


def test_training_stopped_in_its_first_epoch_starts_again_without_overwrite(
    tmp_path, tiny_npz, monkeypatch, capsys
):
    import nasbox.train.trainer as trainer

    base = _tiny_training(tiny_npz)

    def interrupt(*args):
        raise KeyboardInterrupt

    evaluate = trainer.evaluate
    monkeypatch.setattr(trainer, "evaluate", interrupt)
    out = tmp_path / "run"
    assert main([*base, "--out", str(out)]) == 130
    assert "before the first epoch ended" in capsys.readouterr().err.splitlines()[-1]
    monkeypatch.setattr(trainer, "evaluate", evaluate)
    assert main([*base, "--out", str(out)]) == 0
    assert len(_history(out)) == 2


@pytest.mark.parametrize(
    ("arch", "message"),
    [
        (
            "normal: conv_3x3~0 + conv_3x3~5 ; reduce: identity~0 + identity~1",
            "normal cell, block 1: hidden state 5 out of range",
        ),
        (
            "normal: conv_3x3~0 + conv_3x3~1 ; reduce: identity~0 + warp~1",
            "reduce cell, block 1: unknown operation 'warp'",
        ),
        ("normal: conv_3x3~0 conv_3x3~1", "normal cell, block 1:"),
    ],
)
def test_bad_genotype_is_one_line_and_status_2(arch, message, capsys):
    assert main(["describe", "--space", "nasnet", "--arch", arch]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nasbox: error: ") and message in err


def test_search_runs_on_nasnet_with_the_controller(tmp_path, tiny_npz, capsys):
    out = tmp_path / "search"
    args = ["search", "--space", "nasnet", "--strategy", "ppo", "--estimator", "naswot"]
    args += ["--budget", "3", "--data", f"npz:{tiny_npz}", "--batch-size", "8", "--out", str(out)]
    assert main([*args, "--quiet"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("best naswot")
    assert len(list(csv.DictReader((out / "trials.csv").open()))) == 3
