"""Runs that survive: the experiment store, resume after SIGKILL, failures, workers and Ray."""

import csv
import http.server
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from nasbox.cli import main
from nasbox.errors import NasboxError
from nasbox.estimators.petri import DishConfig, PetriDish, get_motif_space
from nasbox.runs import RunStore
from nasbox.runs.folder import COMMAND_RESULTS, LOCK_NAME, RunFolder

FAULTY_ESTIMATOR = '''
"""An estimator that misbehaves on purpose, chosen by the ops on the cell's first two edges."""

import math
import os
import signal
import time

from nasbox.estimators import ESTIMATORS, Estimator


def behaviour(ops):
    first, second = ops[0], ops[1]
    if first == "none":
        return "raise"
    if first == "skip_connect":
        return "nan"
    if (first, second) == ("avg_pool_3x3", "avg_pool_3x3"):
        return "hang"
    if (first, second) == ("avg_pool_3x3", "none"):
        return "die"
    return "ok"


class Faulty(Estimator):
    name = "faulty"

    def __call__(self, arch):
        what = behaviour(arch.ops)
        if what == "raise":
            raise RuntimeError("this cell cannot be built")
        if what == "nan":
            return math.nan
        if what == "hang":
            time.sleep(600)
        if what == "die":
            os.kill(os.getpid(), signal.SIGKILL)
        return float(arch.ops.count("nor_conv_3x3"))


ESTIMATORS.register("faulty")(Faulty)
'''


SLOW_ESTIMATOR = '''
"""An estimator that takes half a second, so a search can be killed mid-evaluation."""

import time

from nasbox.estimators import ESTIMATORS, Estimator


class Slow(Estimator):
    name = "slow"

    def __call__(self, arch):
        time.sleep(0.5)
        return 0.0


ESTIMATORS.register("slow")(Slow)
'''


def nasbox(*args: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
    """A real `nasbox` process (its own interpreter, as a user starts it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "nasbox.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        **kwargs,
    )


def finished_trials(database: Path) -> int:
    if not database.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM trials WHERE state != 'running'").fetchone()[0]
    except sqlite3.Error:
        return 0


def kill_after(process: subprocess.Popen, database: Path, trials: int) -> None:
    """SIGKILL `process` as soon as `trials` trials have finished (it must still be running)."""
    deadline = time.monotonic() + 120
    while finished_trials(database) < trials:
        assert process.poll() is None, (
            f"the run ended before {trials} trials: {process.stderr.read()}"
        )
        assert time.monotonic() < deadline, "the run did not reach the kill point in time"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL


def rows(folder: Path) -> list[tuple[str, str, str, str]]:
    with (folder / "trials.csv").open() as handle:
        return [(r["number"], r["arch"], r["state"], r["value"]) for r in csv.DictReader(handle)]


RESUMABLE = ["random", "evolution", "area", "reinforce", "ppo", "lstm-reinforce", "petri-evolution"]


@pytest.mark.parametrize("strategy", RESUMABLE)
def test_a_run_killed_twice_and_resumed_equals_an_uninterrupted_one(strategy, tmp_path, tiny_npz):
    """SIGKILL at two points (the second after the controllers' first minibatch of 20).

    One torch thread everywhere: tiny networks gain nothing from two, and on a busy machine a
    second thread that waits for a core made the petri dish 20-40x slower.
    """
    torch.set_num_threads(1)
    one_thread = {"OMP_NUM_THREADS": "1"}
    budget, kill_points = 24, (6, 21)
    args = ["search", "--strategy", strategy, "--data", f"npz:{tiny_npz}", "--batch-size", "16"]
    args += ["--samples", str(budget), "--seed", "2", "--quiet"]
    if strategy == "petri-evolution":  # a small dish and evolution: refits in seconds, not minutes
        budget, kill_points = 8, (3, 6)
        args[args.index("--samples") + 1] = str(budget)
        for option in (
            "initial=4",
            "population=4",
            "tournament=2",
            "generations=1",
            "children=4",
            "refit_steps=1",
        ):
            args += ["--strategy-option", option]
    assert main([*args, "--out", str(tmp_path / "straight")]) == 0

    folder = tmp_path / "killed"
    process = nasbox(*args, "--out", str(folder), env=one_thread)
    for point in kill_points:
        kill_after(process, folder / "nasbox.db", point)
        process = nasbox("search", "--resume", str(folder), "--quiet", env=one_thread)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert rows(folder) == rows(tmp_path / "straight")
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["complete"] == budget


@pytest.fixture(scope="module")
def faulty_module(tmp_path_factory) -> dict:
    """A user's estimator module on the path, loaded with `--import faulty_estimator`.

    Module-scoped: once imported, its estimator stays registered in this process.
    """
    plugins = tmp_path_factory.mktemp("plugins")
    (plugins / "faulty_estimator.py").write_text(FAULTY_ESTIMATOR)
    sys.path.insert(0, str(plugins))
    yield {"PYTHONPATH": os.pathsep.join([str(plugins), *sys.path[1:]])}
    sys.path.remove(str(plugins))


def test_failures_are_recorded_and_the_search_goes_on(tmp_path, faulty_module):
    from faulty_estimator import behaviour

    out = tmp_path / "run"
    process = nasbox(
        "search", "--import", "faulty_estimator", "--estimator", "faulty", "--samples", "40",
        "--workers", "2", "--trial-timeout", "3", "--seed", "1", "--out", str(out), "--quiet",
        env=faulty_module,
    )  # fmt: skip
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    trials = list(csv.DictReader((out / "trials.csv").open()))
    assert len(trials) == 40
    errors = {
        "raise": "RuntimeError: this cell cannot be built",
        "nan": "the estimator returned NaN",
        "hang": "timed out after 3 s",
        "die": "the worker process died (killed by signal 9)",
    }
    seen = set()
    for trial in trials:
        ops = tuple(
            part.split("~")[0] for part in trial["arch"].strip("|").split("|") if part != "+"
        )
        what = behaviour(ops)
        seen.add(what)
        if what == "ok":
            assert trial["state"] == "complete" and float(trial["value"]) >= 0
        else:
            assert trial["state"] == "failed" and errors[what] in trial["error"], trial
    assert seen == {"ok", *errors}, "seed 1 no longer draws every kind of failure"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed"] == sum(t["state"] == "failed" for t in trials)
    assert "failed" in stdout and summary["best_value"] == max(
        float(t["value"]) for t in trials if t["state"] == "complete"
    )


def test_max_failures_ends_the_run_with_one_line_and_keeps_the_trials(
    tmp_path, faulty_module, capsys
):
    out = tmp_path / "run"
    args = ["search", "--import", "faulty_estimator", "--estimator", "faulty", "--samples", "40"]
    args += ["--trial-timeout", "1.5"]  # in a worker process: some cells hang or kill theirs
    code = main([*args, "--max-failures", "3", "--seed", "1", "--out", str(out), "--quiet"])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "3 trials failed (--max-failures 3)" in err[0]
    store = RunStore(out / "nasbox.db")
    run = store.runs()[0]
    assert run.status == "failed" and store.counts(run)["failed"] == 3
    assert len(list(csv.DictReader((out / "trials.csv").open()))) == len(store.trials(run))


def test_one_failure_of_max_failures_1_is_counted_in_the_singular():
    """--max-failures 1 ended with 'nasbox: 1 trials failed (--max-failures 1)'."""
    from nasbox.runs import TooManyFailures, run_search
    from nasbox.spaces import get_space
    from nasbox.strategies import get_strategy

    def fails(arch):
        raise RuntimeError("no")

    strategy = get_strategy("random", get_space("nb201"))
    with pytest.raises(TooManyFailures, match=r"^1 trial failed \(--max-failures 1\); the last"):
        run_search(strategy, fails, 5, max_failures=1, progress=False)


@pytest.mark.parametrize("timeout", ["3e6", "1e308"])
def test_a_trial_timeout_longer_than_the_os_can_wait_finishes_the_run(tmp_path, timeout):
    """Past 2**31 ms a wait for the workers raised OverflowError mid-run, leaving it interrupted."""
    out = tmp_path / "run"
    args = ["search", "--estimator", "params", "--samples", "2", "--trial-timeout", timeout]
    assert main([*args, "--out", str(out), "--quiet"]) == 0
    assert [row[2] for row in rows(out)] == ["complete", "complete"]


def test_two_workers_finish_the_budget_with_distinct_cells(tmp_path, tiny_npz):
    out = tmp_path / "run"
    args = ["search", "--strategy", "evolution", "--data", f"npz:{tiny_npz}", "--batch-size", "16"]
    assert main([*args, "--samples", "16", "--workers", "2", "--out", str(out), "--quiet"]) == 0
    trials = list(csv.DictReader((out / "trials.csv").open()))
    assert len({t["arch"] for t in trials}) == 16
    assert {t["worker"].split(":")[0] for t in trials} == {"process-0", "process-1"}


BROKEN_PLUGINS = {
    "syntax_slip": ("def f(:\n", "syntax_slip.py, line 1: invalid syntax"),
    "raises_at_import": (
        "x = 1\nraise RuntimeError('no licence')\n",
        "raised RuntimeError: no licence (",
    ),
    "exits_at_import": ("import sys\nsys.exit(3)\n", "raised SystemExit: 3 ("),
    "registers_twice": (
        "from nasbox.estimators import ESTIMATORS\n\n@ESTIMATORS.register('params')\n"
        "def params(): ...\n",
        "estimator 'params' is registered twice (",
    ),
}


@pytest.mark.parametrize(
    ("module", "message"),
    [
        *((name, message) for name, (_, message) in BROKEN_PLUGINS.items()),
        ("../plugins/mine", "not a module name; give a dotted name"),
        ("mine.py", "not a module name"),
        ("not_there_at_all", "no module 'not_there_at_all' found; put the folder"),
    ],
)
def test_a_plugin_that_cannot_be_imported_is_one_line(
    module, message, tmp_path, monkeypatch, capsys
):
    """A syntax error or an exception in the user's module, or a path given as its name, was a
    traceback; the line now names the file and line to fix."""
    for name, (source, _) in BROKEN_PLUGINS.items():
        (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["search", "--import", module, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    if module in BROKEN_PLUGINS and module != "syntax_slip":
        line = 3 if module == "registers_twice" else 2
        assert err[0].endswith(f"{tmp_path / module}.py, line {line})")
    assert not (tmp_path / "run").exists()


def test_workers_exit_quietly_when_the_search_is_killed(tmp_path):
    """SIGKILL of the search mid-evaluation: its workers find the pipe broken and just end."""
    (tmp_path / "slow_estimator.py").write_text(SLOW_ESTIMATOR)
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path[1:]])}
    folder = tmp_path / "run"
    args = ["--import", "slow_estimator", "--estimator", "slow", "--workers", "2"]
    process = nasbox("search", *args, "--samples", "20", "--out", str(folder), "--quiet", env=env)
    kill_after(process, folder / "nasbox.db", 1)
    _, stderr = process.communicate(timeout=30)  # read to the end: the workers write there too
    assert stderr == ""


def test_a_run_killed_with_sigkill_is_shown_interrupted_not_running(tmp_path, capsys):
    """A search killed with SIGKILL cannot record its end: its store says `running`, and `runs`
    reported it running (with its unfinished trial) forever. No live process holds its folder's
    lock, so `runs` now says it is interrupted, without writing to the store."""
    (tmp_path / "slow_estimator.py").write_text(SLOW_ESTIMATOR)
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path[1:]])}
    folder, database = tmp_path / "run", tmp_path / "run" / "nasbox.db"
    args = ["--import", "slow_estimator", "--estimator", "slow", "--samples", "50", "--quiet"]
    process = nasbox("search", *args, "--out", str(folder), env=env)
    deadline = time.monotonic() + 60
    while finished_trials(database) < 1:
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.01)
    assert main(["runs", "show", str(folder)]) == 0  # alive: running, as its store says
    assert "run           run (running)\n" in capsys.readouterr().out
    kill_after(process, database, 1)
    stored = _runs_table(database)
    assert main(["runs", "show", str(folder)]) == 0
    shown = capsys.readouterr().out
    assert (
        f"run (interrupted: its process is gone; continue with nasbox search --resume {folder})"
        in shown
    )
    assert "1 unfinished (--resume evaluates them)" in shown and "running" not in shown
    assert main(["runs", "list", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[:2] == ["run", "interrupted"]
    assert _runs_table(database) == stored and stored[0][2] == "running"  # nothing written


def _runs_table(database: Path) -> list[tuple]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        return db.execute("SELECT * FROM runs").fetchall()


def test_a_search_through_a_real_local_ray_instance(tmp_path, tiny_npz):
    pytest.importorskip("ray")
    out = tmp_path / "run"
    process = nasbox(
        "search", "--executor", "ray", "--workers", "2", "--samples", "20",
        "--data", f"npz:{tiny_npz}", "--batch-size", "16", "--out", str(out), "--quiet",
    )  # fmt: skip
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    trials = list(csv.DictReader((out / "trials.csv").open()))
    assert len(trials) == 20 and all(t["state"] == "complete" for t in trials)
    assert all(t["worker"].startswith("ray:") for t in trials)


def test_ray_trials_larger_than_any_node_are_refused(tmp_path):
    """--cpus-per-trial above the CPUs of every node (or a GPU on a machine without one) queued
    the trials forever in silence; now one line, before the run folder is made."""
    pytest.importorskip("ray")
    out = tmp_path / "run"
    args = ["search", "--executor", "ray", "--estimator", "params", "--samples", "2"]
    process = nasbox(*args, "--cpus-per-trial", "4096", "--out", str(out), "--quiet")
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 2, stderr
    assert (
        stderr.strip()
        .splitlines()[-1]
        .startswith(
            "nasbox: error: --cpus-per-trial 4096 --gpus-per-trial 0: no node of the Ray cluster"
        )
    )
    assert not out.exists()


DRIVER_ONLY_ESTIMATOR = """
import sys

if sys.argv[0].endswith("default_worker.py"):  # a Ray worker, as on a node that lacks the module
    raise ModuleNotFoundError("No module named 'driver_only'")

from nasbox.estimators import ESTIMATORS, Estimator


@ESTIMATORS.register("driver-only")
class DriverOnly(Estimator):
    def __call__(self, arch):
        return 1.0
"""


def test_a_ray_worker_that_cannot_build_the_estimator_is_one_line(tmp_path):
    """An --import module missing on the Ray workers failed every trial, each with a cut-off
    traceback that never named the missing module; now one line, exit 2, as local workers do."""
    pytest.importorskip("ray")
    (tmp_path / "driver_only.py").write_text(DRIVER_ONLY_ESTIMATOR)
    out = tmp_path / "run"
    process = nasbox(
        "search", "--executor", "ray", "--workers", "2", "--samples", "6",
        "--import", "driver_only", "--estimator", "driver-only", "--out", str(out), "--quiet",
        env={"PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])},
    )  # fmt: skip
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 2
    [line] = stderr.strip().splitlines()
    assert line.startswith("nasbox: error: a Ray worker on node ")
    missing = "ModuleNotFoundError: No module named 'driver_only'"
    assert f"could not build the estimator ({missing})" in line
    trials = list(csv.DictReader((out / "trials.csv").open()))
    assert trials and all(t["state"] == "running" for t in trials)  # --resume evaluates them


SLOW_TO_BUILD_ESTIMATOR = """
import time

from nasbox.estimators import ESTIMATORS, Estimator


@ESTIMATORS.register("slow-to-build")
class SlowToBuild(Estimator):
    def __init__(self, context):
        super().__init__(context)
        time.sleep(3)  # as loading a large dataset or model on a fresh worker does

    def __call__(self, arch):
        return 1.0
"""


def test_ray_trial_timeout_counts_only_the_evaluation(tmp_path):
    """With Ray, --trial-timeout counted from the submission, so a fresh worker's start and its
    estimator's build timed every trial out (each timeout killed the worker, and the next one
    started over); now it counts from the evaluation's start, as with local workers."""
    pytest.importorskip("ray")
    (tmp_path / "slow_to_build.py").write_text(SLOW_TO_BUILD_ESTIMATOR)
    out = tmp_path / "run"
    process = nasbox(
        "search", "--executor", "ray", "--workers", "2", "--samples", "4", "--trial-timeout", "2",
        "--import", "slow_to_build", "--estimator", "slow-to-build", "--out", str(out), "--quiet",
        env={"PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])},
    )  # fmt: skip
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    trials = list(csv.DictReader((out / "trials.csv").open()))
    assert [t["state"] for t in trials] == ["complete"] * 4, [t["error"] for t in trials]


def test_a_ray_address_in_the_environment_that_answers_nowhere_is_one_line(tmp_path):
    """RAY_ADDRESS (which Ray joins when --ray-address is left out) naming no cluster retried
    for minutes with a screenful of warnings; now one line, as --ray-address gets."""
    pytest.importorskip("ray")
    out = tmp_path / "run"
    args = ["search", "--executor", "ray", "--estimator", "params", "--samples", "2"]
    process = nasbox(*args, "--out", str(out), "--quiet", env={"RAY_ADDRESS": "127.0.0.1:1"})
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2
    assert stderr.strip().splitlines() == [
        "nasbox: error: RAY_ADDRESS (set in the environment) 127.0.0.1:1: no Ray cluster answers "
        "there; start one with `ray start --head` or unset RAY_ADDRESS to start a local one"
    ]
    assert not out.exists()


def test_a_ray_address_where_a_web_server_answers_is_one_line(tmp_path):
    """--ray-address naming the dashboard's port (a web server, not Ray's GCS) got past the
    reachability check and hung for minutes in Ray's retries; now one line, exit 2."""
    pytest.importorskip("ray")
    with http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler) as web:
        threading.Thread(target=web.serve_forever, daemon=True).start()
        address = f"127.0.0.1:{web.server_address[1]}"
        out = tmp_path / "run"
        args = ["search", "--executor", "ray", "--estimator", "params", "--samples", "2"]
        process = nasbox(*args, "--ray-address", address, "--out", str(out), "--quiet")
        _, stderr = process.communicate(timeout=60)
        web.shutdown()
    assert process.returncode == 2
    assert stderr.strip().splitlines() == [
        f"nasbox: error: --ray-address {address}: something answers there, but not Ray (a web "
        "server, such as the dashboard's port?); give the port `ray start --head` printed, "
        "6379 by default"
    ]
    assert not out.exists()


def test_a_search_joins_a_cluster_started_with_ray_start(tmp_path, tiny_npz):
    """As on a real cluster: `ray start --head`, then `--ray-address HEAD:PORT` (token auth)."""
    pytest.importorskip("ray")
    ray_cli = str(Path(sys.executable).parent / "ray")
    head = [ray_cli, "start", "--head", "--port", "6390", "--num-cpus", "2"]
    head += ["--include-dashboard=false", "--disable-usage-stats"]
    subprocess.run(head, check=True, capture_output=True, timeout=120)
    try:
        out = tmp_path / "run"
        process = nasbox(
            "search", "--executor", "ray", "--ray-address", "127.0.0.1:6390", "--samples", "6",
            "--data", f"npz:{tiny_npz}", "--batch-size", "16", "--out", str(out), "--quiet",
        )  # fmt: skip
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
    finally:
        subprocess.run([ray_cli, "stop", "--force"], capture_output=True, timeout=120)
    trials = list(csv.DictReader((out / "trials.csv").open()))
    assert len(trials) == 6 and all(t["worker"].startswith("ray:") for t in trials)


def test_runs_list_show_and_export(tmp_path, capsys):
    import pandas as pd

    runs = tmp_path / "runs"
    storage = tmp_path / "all.db"
    for name, strategy in (("first", "random"), ("second", "evolution")):
        args = ["search", "--estimator", "params", "--strategy", strategy, "--samples", "5"]
        args += ["--storage", str(storage), "--out", str(runs / name), "--quiet"]
        assert main(args) == 0
    capsys.readouterr()
    assert main(["runs", "list", str(storage)]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert main(["runs", "list", "--storage", str(storage)]) == 0  # as search names it
    assert capsys.readouterr().out.splitlines() == listing
    assert listing[0].split()[:4] == ["run", "status", "space/strategy/estimator", "done"]
    assert [line.split()[:4] for line in listing[1:]] == [
        ["first", "complete", "nb201/random/params", "5/5"],
        ["second", "complete", "nb201/evolution/params", "5/5"],
    ]
    assert main(["runs", "show", str(runs / "second")]) == 0
    shown = capsys.readouterr().out
    assert "strategy      evolution" in shown and "5 complete, 0 failed" in shown
    assert "best arch     |" in shown
    assert (
        main(
            [
                "runs",
                "export",
                "first",
                "--storage",
                str(storage),
                "--out",
                str(tmp_path / "t.parquet"),
            ]
        )
        == 0
    )
    frame = pd.read_parquet(tmp_path / "t.parquet")
    assert len(frame) == 5 and {"number", "arch", "state", "value", "seconds"} <= set(frame.columns)
    upper = tmp_path / "trials.CSV"  # a suffix in capitals is still a CSV
    assert main(["runs", "export", "first", "--storage", str(storage), "--out", str(upper)]) == 0
    assert len(pd.read_csv(upper)) == 5


def test_a_reader_that_closes_the_pipe_ends_runs_list_and_show_quietly(tmp_path):
    """`nasbox runs show RUN | head -1` printed 'nasbox: error: Broken pipe' with exit status 2;
    it now ends as Unix tools do when their reader has gone: nothing said, 128 + SIGPIPE."""
    out = tmp_path / "run"
    assert (
        main(["search", "--estimator", "params", "--samples", "2", "--quiet", "--out", str(out)])
        == 0
    )
    for args in (["runs", "show", str(out)], ["runs", "list", str(out / "nasbox.db")]):
        process = nasbox(*args)
        process.stdout.close()  # the reader is gone before the command writes a line
        stderr = process.stderr.read()
        assert process.wait(timeout=60) == 128 + signal.SIGPIPE, (args, stderr)
        assert stderr == "", args


def test_runs_show_counts_rejected_and_unfinished_trials_apart(tmp_path, capsys):
    """Rejected trials were counted as running, and so were an interrupted run's unfinished ones."""
    out = tmp_path / "run"
    args = ["search", "--estimator", "params", "--constraint", "params<=0.5", "--samples", "4"]
    assert main([*args, "--quiet", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["runs", "show", str(out)]) == 0
    assert "trials        4 complete, 0 failed, 2 rejected by the constraints\n" in (
        capsys.readouterr().out
    )
    with sqlite3.connect(out / "nasbox.db") as db:  # as a run killed mid-trial leaves it
        db.execute("UPDATE runs SET status = 'interrupted'")
        db.execute("UPDATE trials SET state = 'running' WHERE number = 5")
    assert main(["runs", "show", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "3 complete, 0 failed, 2 rejected by the constraints, 1 unfinished" in shown
    with sqlite3.connect(out / "nasbox.db") as db:
        db.execute("UPDATE trials SET told_after = NULL, tell_order = NULL WHERE number = 5")
    assert main(["runs", "export", str(out), "--out", str(tmp_path / "t.csv")]) == 0
    with (tmp_path / "t.csv").open() as handle:  # whole numbers stay whole beside a missing one
        told = {row["number"]: row["told_after"] for row in csv.DictReader(handle)}
    assert told["5"] == "" and all(value.isdigit() for key, value in told.items() if key != "5")


def test_runs_show_aligns_the_values_past_the_longest_setting(tmp_path, capsys):
    """The labels' column was 11 wide: `latency_batch 1` stood out of line with the rest."""
    out = tmp_path / "run"
    args = ["search", "--estimator", "params", "--samples", "2", "--quiet", "--out", str(out)]
    assert main(args) == 0
    capsys.readouterr()
    assert main(["runs", "show", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    column = len("latency_batch ")
    assert "latency_batch 1" in lines
    assert all(line[column - 1] == " " and line[column] != " " for line in lines)


def test_runs_list_and_show_leave_an_empty_file_empty(tmp_path, capsys):
    """They only read: an empty file given as the database is refused, not made one."""
    empty = tmp_path / "empty.db"
    empty.touch()
    assert main(["runs", "list", str(empty)]) == 2
    assert "an empty database, without runs" in capsys.readouterr().err
    assert main(["runs", "show", "first", "--storage", str(empty)]) == 2
    assert "an empty database, without runs" in capsys.readouterr().err
    assert empty.stat().st_size == 0


def test_a_run_whose_database_is_gone_is_one_line_and_no_empty_database_is_made(tmp_path, capsys):
    """A run folder's summary names its database; moved away, opening it made an empty database
    in its place and said the run was not in it."""
    shared, folder = tmp_path / "all.db", tmp_path / "run"
    search = ["search", "--estimator", "params", "--samples", "2", "--quiet"]
    assert main([*search, "--out", str(folder), "--storage", str(shared)]) == 0
    shared.rename(tmp_path / "moved.db")
    capsys.readouterr()
    for args in (
        ["runs", "show", str(folder)],
        ["runs", "export", str(folder), "--out", str(tmp_path / "t.csv")],
        ["search", "--resume", str(folder), "--quiet"],
    ):
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"the run's database {shared} is missing" in err[0], err
        assert not shared.exists(), args
    with pytest.raises(NasboxError, match="no such database file"):
        RunStore(shared, create=False)
    assert not shared.exists()


def test_a_storage_file_in_a_missing_folder_gets_its_folder_made(tmp_path, capsys):
    """As --out is: SQLite said 'not a usable nasbox database (unable to open database file)'."""
    storage = tmp_path / "nf" / "deeper" / "all.db"
    args = ["search", "--estimator", "params", "--samples", "2", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "nf" / "run"), "--storage", str(storage)]) == 0
    capsys.readouterr()
    assert main(["runs", "list", str(storage)]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[:2] == ["run", "complete"]


def test_runs_list_finds_the_runs_of_a_storage_file_its_run_folders_name(tmp_path, capsys):
    """Runs kept in a --storage file (in the folder or outside it) are found through their run
    folders' summaries; `runs list FOLDER` said there were none."""
    runs = tmp_path / "runs"
    runs.mkdir()
    search = ["search", "--estimator", "params", "--samples", "2", "--quiet"]
    assert main([*search, "--out", str(runs / "a"), "--storage", str(runs / "all.db")]) == 0
    assert main([*search, "--out", str(runs / "b"), "--storage", str(tmp_path / "x.db")]) == 0
    assert main([*search, "--out", str(runs / "c")]) == 0
    capsys.readouterr()
    assert main(["runs", "list", str(runs)]) == 0
    listed = [line.split()[:2] for line in capsys.readouterr().out.splitlines()[1:]]
    assert sorted(listed) == [["a", "complete"], ["b", "complete"], ["c", "complete"]]


def test_runs_list_skips_an_unreadable_database_with_a_warning(tmp_path, capsys):
    args = ["search", "--estimator", "params", "--samples", "2", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "r1")]) == 0
    damaged = tmp_path / "c3"
    damaged.mkdir()
    (damaged / "nasbox.db").write_bytes((tmp_path / "r1" / "nasbox.db").read_bytes()[:2000])
    capsys.readouterr()
    assert main(["runs", "list", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert [line.split()[:2] for line in captured.out.splitlines()[1:]] == [["r1", "complete"]]
    warning = captured.err.strip().splitlines()
    assert len(warning) == 1 and warning[0].startswith(
        f"nasbox: warning: {damaged / 'nasbox.db'}: "
    )
    assert "not a usable nasbox database" in warning[0]
    (tmp_path / "r1" / "nasbox.db").unlink()  # nothing readable is left: an error
    assert main(["runs", "list", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "no run database under it could be read" in err[1]
    assert main(["runs", "list", str(damaged / "nasbox.db")]) == 2  # asked for by name
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_a_shared_database_never_replaces_another_folder_s_run(tmp_path, capsys):
    """Runs are named after their folder: d/x and e/x clash in one --storage file."""
    storage = tmp_path / "all.db"
    args = ["search", "--estimator", "params", "--samples", "2", "--storage", str(storage)]
    args.append("--quiet")
    assert main([*args, "--out", str(tmp_path / "d" / "x")]) == 0
    capsys.readouterr()
    for extra in ([], ["--overwrite"]):
        assert main([*args, "--out", str(tmp_path / "e" / "x"), *extra]) == 2
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and f"of folder {tmp_path / 'd' / 'x'}" in error[0], error
        assert "choose an --out not named 'x'" in error[0]
    with RunStore(storage) as store:
        assert store.find_run("x").folder == str(tmp_path / "d" / "x")
    assert not (tmp_path / "e").exists()
    for name in ("trials.csv", "summary.json", "trials.png"):  # as if the folder were emptied
        (tmp_path / "d" / "x" / name).unlink()
    assert main([*args, "--out", str(tmp_path / "d" / "x")]) == 2
    assert f"continue it with --resume x --storage {storage}" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "d" / "x"), "--overwrite"]) == 0


def test_a_run_name_in_storage_wins_over_a_same_named_folder_here(tmp_path, monkeypatch, capsys):
    """`runs show x --storage all.db` and `search --resume x --storage all.db` beside an
    unrelated folder x/ said 'the folder holds no nasbox search run'; --storage names the run."""
    storage = tmp_path / "all.db"
    args = ["search", "--estimator", "params", "--samples", "2", "--quiet"]
    assert main([*args, "--storage", str(storage), "--out", str(tmp_path / "runs" / "x")]) == 0
    here = tmp_path / "here"
    (here / "x").mkdir(parents=True)
    (here / "x" / "notes.txt").write_text("not a run")
    monkeypatch.chdir(here)
    capsys.readouterr()
    assert main(["runs", "show", "x", "--storage", str(storage)]) == 0
    assert "2 complete, 0 failed" in capsys.readouterr().out
    resume = ["search", "--resume", "x", "--storage", str(storage), "--samples", "3", "--quiet"]
    assert main(resume) == 0
    assert len(rows(tmp_path / "runs" / "x")) == 3
    assert sorted(p.name for p in (here / "x").iterdir()) == ["notes.txt"]
    capsys.readouterr()
    assert main(["runs", "show", "y", "--storage", str(storage)]) == 2  # in neither
    (here / "y").mkdir()
    assert main(["runs", "show", "y", "--storage", str(storage)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"nasbox: error: RUN y: no such run in {storage} (runs: x)"
    assert err[1] == (
        f"nasbox: error: RUN y: no such run in {storage} (runs: x), and the folder y holds no "
        "nasbox search run"
    )


def test_an_unknown_run_is_refused_with_the_runs_named_near_it(tmp_path, capsys):
    """A run name missing from a store of many runs was refused with every name on one line,
    hundreds of them; a mistyped run folder was refused without a hint. Both now name the runs
    (or folders) whose names are near the one given."""
    storage = tmp_path / "all.db"
    with RunStore(storage) as store:
        for day in range(1, 9):
            store.create_run(f"search-0{day}", {"space": "nb201"}, str(tmp_path / "runs"), "0")
    for args, option in ((["runs", "show"], "RUN"), (["search", "--resume"], "--resume")):
        assert main([*args, "search-10", "--storage", str(storage)]) == 2
        assert capsys.readouterr().err == (
            f"nasbox: error: {option} search-10: no such run in {storage} (8 runs; near names: "
            "search-08, search-07, search-06, search-05, search-04)\n"
        )
    assert main(["runs", "show", "zzz", "--storage", str(storage)]) == 2
    assert f"none named like it; `nasbox runs list {storage}` names them" in capsys.readouterr().err
    run = tmp_path / "runs" / "naswot-cifar"
    assert main(["search", "--estimator", "params", "--samples", "1", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["runs", "show", str(tmp_path / "runs" / "naswot-cifra")]) == 2
    assert f"no such run folder (near names: {run}; to name" in capsys.readouterr().err


def test_a_run_given_as_a_file_says_it_is_one(tmp_path, capsys):
    """`runs show RUN/nasbox.db` said 'no such run folder' of a file that is there."""
    run = tmp_path / "run"
    assert main(["search", "--estimator", "params", "--samples", "1", "--out", str(run)]) == 0
    capsys.readouterr()
    for args in (
        ["runs", "show"],
        ["runs", "export", "--out", str(tmp_path / "t.csv")],
        ["search", "--resume"],
    ):
        assert main([*args, str(run / "nasbox.db")]) == 2
        assert (
            f"{run / 'nasbox.db'} is a file, not a run folder; give the run folder that holds"
            in (capsys.readouterr().err)
        )


# Writes a trials CSV to argv[1] as nasbox does, says so, and waits mid-write to be killed.
KILLED_WRITER = """
import sys, time
from nasbox.runs.folder import replaced_atomically
with replaced_atomically(sys.argv[1]) as temporary:
    temporary.write_text("number,arch\\n0,")
    print("writing", flush=True)
    time.sleep(120)
"""


def killed_mid_write(path: Path) -> int:
    """The PID of a process killed with SIGKILL while `replaced_atomically` wrote `path`."""
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert writer.stdout.readline() == "writing\n"
    writer.kill()
    writer.wait()
    return writer.pid


def test_temporaries_of_a_write_killed_midway_are_removed_by_the_next_run(tmp_path):
    """SIGKILL skips `replaced_atomically`'s cleanup, so a hidden `.trials.tmp-PID.csv` stayed in
    the run folder for good; a resume there removes those whose process is gone, and only them."""
    folder = tmp_path / "run"
    search = ["search", "--estimator", "params", "--quiet"]
    assert main([*search, "--samples", "2", "--out", str(folder)]) == 0
    pid = killed_mid_write(folder / "trials.csv")
    stale = folder / f".trials.tmp-{pid}.csv"
    assert stale.is_file()  # what a killed write leaves
    (folder / f".summary.tmp-{pid}.json").write_text("{")
    kept = [f".notes.tmp-{pid}.txt", f"trials.tmp-{pid}.csv", f"{stale.name}.bak"]
    for name in kept:  # not nasbox's temporaries of this folder's files
        (folder / name).write_text("the user's")
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        kept.append(f".trials.tmp-{alive.pid}.csv")  # a process still writing it
        (folder / kept[-1]).write_text("number,arch\n")
        assert main(["search", "--resume", str(folder), "--samples", "3", "--quiet"]) == 0
    finally:
        alive.kill()
        alive.wait()
    assert len(rows(folder)) == 3
    assert sorted(p.name for p in folder.glob("*tmp-*")) == sorted(kept)


def test_a_training_folder_drops_the_temporaries_of_a_killed_training(tmp_path):
    """The same for `nasbox train`'s files (`.history.tmp-PID.csv`, `.checkpoint.tmp-PID.pt`)."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    names = [f".history.tmp-{gone.pid}.csv", f".checkpoint.tmp-{gone.pid}.pt"]
    (tmp_path / "train").mkdir()
    for name in [*names, f".trials.tmp-{gone.pid}.csv"]:
        (tmp_path / "train" / name).write_text("half")
    with RunFolder(tmp_path / "train", COMMAND_RESULTS["train"], resume=True):
        left = sorted(p.name for p in (tmp_path / "train").iterdir())
    assert left == [LOCK_NAME, f".trials.tmp-{gone.pid}.csv"]  # not a file training writes


def test_a_rerun_writing_the_same_out_file_removes_the_temporary_of_a_killed_one(tmp_path):
    """`runs export --out FILE` (and every other single-file --out) killed mid-write left its
    hidden `.FILE.tmp-PID.csv` for good; the next write of FILE removes it, not a live one's."""
    run, out = tmp_path / "run", tmp_path / "trials.csv"
    search = ["search", "--estimator", "params", "--samples", "2", "--quiet", "--out", str(run)]
    assert main(search) == 0
    pid = killed_mid_write(out)
    assert (tmp_path / f".trials.tmp-{pid}.csv").is_file()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        live = tmp_path / f".trials.tmp-{alive.pid}.csv"  # another process writing it now
        live.write_text("number,arch\n")
        assert main(["runs", "export", str(run), "--out", str(out)]) == 0
    finally:
        alive.kill()
        alive.wait()
    assert len(list(csv.DictReader(out.open()))) == 2
    assert [p.name for p in tmp_path.glob("*tmp-*")] == [live.name]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads and writes past file modes")
def test_an_out_file_in_a_folder_that_cannot_be_listed_is_still_written(tmp_path):
    """Looking for killed writes' temporaries only tidies: a folder that may be written but not
    read (mode 0o300) cannot be searched for them, and the file is written all the same."""
    run, folder = tmp_path / "run", tmp_path / "drop"
    search = ["search", "--estimator", "params", "--samples", "2", "--quiet", "--out", str(run)]
    assert main(search) == 0
    folder.mkdir(mode=0o300)
    try:
        assert main(["runs", "export", str(run), "--out", str(folder / "trials.csv")]) == 0
    finally:
        folder.chmod(0o755)
    assert len(list(csv.DictReader((folder / "trials.csv").open()))) == 2


def test_a_finished_run_can_be_extended_with_a_larger_budget(tmp_path):
    out = tmp_path / "run"
    base = ["search", "--estimator", "params", "--strategy", "evolution", "--quiet"]
    assert main([*base, "--samples", "8", "--out", str(tmp_path / "straight")]) == 0
    assert main([*base, "--samples", "5", "--out", str(out)]) == 0
    assert main(["search", "--resume", str(out), "--samples", "8", "--quiet"]) == 0
    assert rows(out) == rows(tmp_path / "straight")


def test_a_resumed_run_lists_each_trial_once_in_trials_csv(tmp_path, monkeypatch):
    """Ctrl-C leaves the trial in flight `running`; the resume evaluates it again and its row
    must replace that one, not follow it (read mid-run: the end of a run rewrites the file)."""
    from nasbox.estimators.cost import Parameters

    out, count = tmp_path / "run", Parameters.__call__
    calls = []

    def interrupt_the_third(self, arch):
        calls.append(arch)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return count(self, arch)

    monkeypatch.setattr(Parameters, "__call__", interrupt_the_third)
    args = ["search", "--estimator", "params", "--samples", "4", "--quiet"]
    assert main([*args, "--out", str(out)]) == 130
    assert [row[2] for row in rows(out)] == ["complete", "complete", "running"]
    listed_mid_run = []
    monkeypatch.setattr(
        Parameters, "__call__", lambda self, arch: listed_mid_run.append(rows(out)) or 1.0
    )
    assert main(["search", "--resume", str(out), "--quiet"]) == 0
    numbers = [[row[0] for row in listed] for listed in listed_mid_run]
    assert numbers == [["0", "1"], ["0", "1", "2"]], "trial 2 once, as it finished"
    assert [row[0] for row in rows(out)] == ["0", "1", "2", "3"]


def bad_invocations(tmp_path: Path) -> list[tuple[list[str], str]]:
    finished = tmp_path / "finished"
    assert (
        main(
            ["search", "--estimator", "params", "--samples", "2", "--out", str(finished), "--quiet"]
        )
        == 0
    )
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not a database" * 100)
    foreign = tmp_path / "other.sqlite"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE songs (title TEXT)")
    training = tmp_path / "training"
    training.mkdir()
    (training / "checkpoint.pt").write_bytes(b"weights")
    folder = tmp_path / "trials.csv"
    folder.mkdir()
    return [
        (["search", "--resume", ""], "--resume is empty"),
        (["search", "--out", " "], "--out is empty"),
        (["search", "--import", "", "--out", str(tmp_path / "i")], "--import is empty"),
        (
            ["search", "--storage", str(foreign), "--out", str(tmp_path / "f")],
            "a database of another program",
        ),
        (
            ["search", "--resume", str(finished), "--storage", str(corrupt)],
            "is not the database of run folder",
        ),
        (["search", "--out", str(training)], "holds the results of `nasbox train`"),
        (
            ["search", "--workers", "100000", "--out", str(tmp_path / "w")],
            "local processes is more than",
        ),
        (
            ["search", "--strategy", "area", "--prescore", "train:1", "--out", str(tmp_path / "p")],
            "trains every candidate",
        ),
        (["search", "--resume", str(tmp_path / "nowhere")], "no such run folder"),
        (
            ["search", "--resume", str(finished), "--strategy", "evolution"],
            "conflicts with the resumed run's --strategy random",
        ),
        (
            ["search", "--resume", "nameless", "--storage", str(corrupt)],
            "not a usable nasbox database",
        ),
        (
            ["search", "--storage", str(corrupt), "--out", str(tmp_path / "new")],
            "not a usable nasbox database",
        ),
        (["search", "--out", str(finished)], "already holds results"),
        (
            ["search", "--resume", str(finished), "--samples", "1"],
            "--samples 1 is fewer than the 2 trials the resumed run has already finished",
        ),
        (
            ["search", "--workers", "0", "--out", str(tmp_path / "w")],
            "--workers must be at least 1",
        ),
        (
            [
                "search",
                "--executor",
                "ray",
                "--ray-address",
                "127.0.0.1:1",
                "--out",
                str(tmp_path / "r"),
            ],
            "no Ray cluster answers there",
        ),
        (
            ["search", "--samples", "20000", "--out", str(tmp_path / "s")],
            "more than the 15625 architectures",
        ),
        (["search", "--seed", "-1", "--out", str(tmp_path / "s")], "--seed must be a whole number"),
        (
            ["search", "--trial-timeout", "0", "--out", str(tmp_path / "s")],
            "--trial-timeout must be",
        ),
        (["runs", "show", str(tmp_path / "nowhere")], "no such run folder"),
        (
            ["runs", "export", str(finished), "--out", str(folder), "--overwrite"],
            f"--out {folder} is a folder; give a file name",
        ),
    ]


def test_bad_run_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys):
    for args, message in bad_invocations(tmp_path):
        before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
        assert main([*args, "--quiet"] if args[0] == "search" else args) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (args, err)
        assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before, args


def test_a_locked_database_and_a_busy_run_folder_are_refused(tmp_path, capsys, monkeypatch):
    from filelock import FileLock

    import nasbox.runs.store

    monkeypatch.setattr(nasbox.runs.store, "BUSY_TIMEOUT_S", 0.2)
    storage = tmp_path / "shared.db"
    RunStore(storage).close()
    holder = sqlite3.connect(storage, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    args = ["search", "--estimator", "params", "--samples", "2", "--quiet"]
    assert main([*args, "--storage", str(storage), "--out", str(tmp_path / "a")]) == 2
    assert "the database is locked by another process" in capsys.readouterr().err
    holder.execute("ROLLBACK")

    busy = tmp_path / "busy"
    busy.mkdir()
    with FileLock(busy / ".nasbox.lock"):  # as a running nasbox process holds it
        assert main([*args, "--out", str(busy)]) == 2
    assert "in use by another nasbox process" in capsys.readouterr().err
    assert main([*args, "--out", str(busy)]) == 0  # released: a killed holder leaves no stale lock
    with FileLock(busy / ".nasbox.lock"):  # it said '--out busy ...; or choose another --out'
        assert main(["search", "--resume", str(busy), "--quiet"]) == 2
    assert capsys.readouterr().err.endswith(
        f"--resume {busy} is in use by another nasbox process; wait for it to finish\n"
    )


def test_a_store_written_before_constraints_existed_takes_rejected_trials(tmp_path):
    from nasbox.runs.store import SCHEMA

    storage = tmp_path / "old.db"
    old = sqlite3.connect(storage, isolation_level=None)
    old.executescript(SCHEMA.replace(", 'rejected'", ""))  # the CHECK of earlier versions
    old.execute("INSERT INTO runs VALUES (1, 'before', 'complete', '{}', NULL, '0.1.0', 0, 0)")
    old.execute("INSERT INTO trials (run_id, number, arch, state, value, started) VALUES "
                "(1, 0, 'an-arch', 'complete', 1.5, 0)")  # fmt: skip
    old.close()
    args = ["search", "--estimator", "params", "--samples", "3", "--constraint", "params<=0.3"]
    assert main([*args, "--storage", str(storage), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    with RunStore(storage) as store:
        states = [t.state for t in store.trials(store.find_run("run"))]
        before = store.trials(store.find_run("before"))
    assert "rejected" in states and states.count("complete") == 3
    assert [(t.arch, t.state, t.value) for t in before] == [("an-arch", "complete", 1.5)]


def test_a_run_of_eight_asynchronous_workers_resumes_from_any_point():
    """Replaying the recorded interleaving of asks and tells rebuilds the strategy exactly, so
    the resumed run proposes the recorded in-flight cells again and never repeats a cell."""
    from nasbox.runs import SimulatedExecutor, run_search
    from nasbox.spaces import get_space
    from nasbox.strategies import get_strategy

    space = get_space("nb201")

    def value(arch):
        return float(arch.ops.count("nor_conv_3x3") + 0.1 * arch.ops.count("skip_connect"))

    def duration(arch):
        return 1.0 + arch.ops.count("nor_conv_3x3")

    def executor():
        return SimulatedExecutor(value, duration, workers=8)

    straight = run_search(get_strategy("evolution", space, seed=5), executor(), 60, progress=False)
    for told in (3, 17, 41):
        history = [t for t in straight if t.tell_order < told]
        asked = max(t.told_after for t in history)
        done = {t.number for t in history}
        arch_of = {t.number: t.arch for t in straight}
        running = [(n, arch_of[n]) for n in range(asked) if n not in done]
        resumed = run_search(
            get_strategy("evolution", space, seed=5),
            executor(),
            60,
            history=history,
            running=running,
            progress=False,
        )
        assert resumed[:told] == history
        assert sorted(t.number for t in resumed) == list(range(60))
        assert len({t.arch for t in resumed}) == 60
        assert {t.number: t.arch for t in resumed if t.number < asked} == {
            n: arch_of[n] for n in range(asked)
        }


def test_a_resume_from_another_folder_reads_the_run_s_own_data(tmp_path, tiny_npz, monkeypatch):
    """A relative --data path is stored absolute: resumed elsewhere, beside another file of the
    same name, the run used to score its new trials on that other file without a word."""
    monkeypatch.chdir(tiny_npz.parent)
    search = ["search", "--data", "npz:tiny.npz", "--batch-size", "16", "--quiet"]
    assert main([*search, "--samples", "3", "--out", str(tmp_path / "straight")]) == 0
    assert main([*search, "--samples", "2", "--out", str(tmp_path / "run")]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, size=(40, 8, 8, 3), dtype=np.uint8)
    np.savez(elsewhere / "tiny.npz", x_train=images, y_train=rng.integers(0, 4, size=40))
    monkeypatch.chdir(elsewhere)
    assert main(["search", "--resume", str(tmp_path / "run"), "--samples", "3", "--quiet"]) == 0

    def values(folder):
        return [row["value"] for row in csv.DictReader((folder / "trials.csv").open())]

    assert values(tmp_path / "run") == values(tmp_path / "straight")


def test_a_resume_from_another_folder_reads_the_run_s_own_dish(tmp_path, monkeypatch):
    """A relative `--strategy-option dish=FILE` is stored absolute, as --data is: resumed beside
    another dish of the same name, petri-evolution went on with that dish without a word."""
    motifs = get_motif_space("nb201", channels=2, image_size=4)
    config = DishConfig(samples=4, inner_steps=2, outer_steps=2, batch=4)
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    for seed, folder in enumerate((here, elsewhere)):
        folder.mkdir()
        PetriDish(motifs, config, seed=seed).save(folder / "dish.pt")
    options = ["dish=dish.pt", "initial=2", "refit_steps=1", "generations=1", "children=4"]
    search = ["search", "--strategy", "petri-evolution", "--estimator", "params", "--quiet"]
    search += [f"--strategy-option={option}" for option in options]
    monkeypatch.chdir(here)
    assert main([*search, "--samples", "3", "--out", str(tmp_path / "straight")]) == 0
    assert main([*search, "--samples", "2", "--out", str(tmp_path / "run")]) == 0  # no dish yet
    monkeypatch.chdir(elsewhere)
    assert main(["search", "--resume", str(tmp_path / "run"), "--samples", "3", "--quiet"]) == 0
    assert rows(tmp_path / "run") == rows(tmp_path / "straight")


def resumed_notes(run: Path, capsys) -> list[str]:
    """What resuming `run` to 4 trials, then to 5, writes to stderr each time: a run mended
    by its first resume has nothing left to say at the second."""
    said = []
    for samples in ("4", "5"):
        capsys.readouterr()
        assert main(["search", "--resume", str(run), "--samples", samples, "--quiet"]) == 0
        said.append(capsys.readouterr().err)
    return said


def test_a_run_stored_with_options_its_strategy_never_used_resumes_without_them(tmp_path, capsys):
    """lstm-reinforce took ppo's clip and ppo_epochs and ignored them until they were refused;
    a run stored with them was refused on --resume, and the user could not drop a stored option.
    It resumes as if they were never given, with a note naming them, and forgets them."""
    search = ["search", "--strategy", "lstm-reinforce", "--estimator", "params", "--quiet"]
    search += ["--strategy-option", "minibatch=2"]
    assert main([*search, "--samples", "5", "--out", str(tmp_path / "straight")]) == 0
    run = tmp_path / "run"
    assert main([*search, "--samples", "3", "--out", str(run)]) == 0
    with sqlite3.connect(run / "nasbox.db") as db:  # as a version that took them stored them
        settings = json.loads(db.execute("SELECT settings FROM runs").fetchone()[0])
        settings["strategy_options"] = ["clip=0.2", "minibatch=2", "ppo_epochs=3"]
        db.execute("UPDATE runs SET settings = ?", (json.dumps(settings),))
    assert resumed_notes(run, capsys) == [
        "nasbox: note: dropped the resumed run's --strategy-option clip=0.2 ppo_epochs=3: "
        "lstm-reinforce never used them, so the run goes on unchanged\n",
        "",
    ]
    assert rows(run) == rows(tmp_path / "straight")
    assert json.loads((run / "summary.json").read_text())["strategy_options"] == ["minibatch=2"]


def test_a_trial_stored_with_inf_by_an_older_version_resumes_as_failed(tmp_path, capsys):
    """A +inf value was kept before strategies refused it; the replay told it and the resume
    stopped. It is now recorded and replayed as failed, as a new run fails it, and the rest of
    the run goes on; its value stays in the store."""
    search = ["search", "--estimator", "params", "--quiet"]
    assert main([*search, "--samples", "5", "--out", str(tmp_path / "straight")]) == 0
    run = tmp_path / "run"
    assert main([*search, "--samples", "3", "--out", str(run)]) == 0
    with sqlite3.connect(run / "nasbox.db") as db:
        db.execute("UPDATE trials SET value = 9e999 WHERE number = 1")
    assert resumed_notes(run, capsys) == [
        "nasbox: note: the resumed run's trial 1 holds +inf, which cannot be ranked (an "
        "overflow?): now recorded and replayed as failed, as a new run fails such a trial\n",
        "",
    ]
    straight = rows(tmp_path / "straight")
    assert rows(run) == [*straight[:1], (*straight[1][:2], "failed", "inf"), *straight[2:]]
    with RunStore(run / "nasbox.db") as store:
        assert store.trials(store.runs()[0])[1].error == "the estimator returned +inf"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["failed"] == 1 and summary["best_value"] == max(
        float(row[3]) for row in straight if row[0] != "1"
    )


def stored_folder(database: Path) -> str:
    with sqlite3.connect(database) as connection:
        (folder,) = connection.execute("SELECT folder FROM runs").fetchone()
    return folder


def test_a_moved_or_copied_run_resumed_there_is_listed_in_its_new_folder(tmp_path, capsys):
    """The store kept the folder the run was made in, so `runs list` and `runs show` named a
    folder that was gone (moved) or another copy (copied) after the run was resumed elsewhere."""
    import shutil

    search = ["search", "--estimator", "params", "--quiet"]
    made = tmp_path / "made"
    assert main([*search, "--samples", "2", "--out", str(made)]) == 0
    copied = tmp_path / "copied"
    shutil.copytree(made, copied)
    moved = tmp_path / "moved"
    shutil.move(made, moved)
    assert main(["search", "--resume", str(moved), "--samples", "3", "--quiet"]) == 0
    assert stored_folder(moved / "nasbox.db") == str(moved.resolve())
    capsys.readouterr()
    assert main(["runs", "list", str(moved / "nasbox.db")]) == 0
    assert str(moved.resolve()) in capsys.readouterr().out
    assert main(["runs", "show", str(moved)]) == 0
    shown = capsys.readouterr().out
    assert str(moved.resolve()) in shown and str(made) not in shown

    assert main(["search", "--resume", str(copied), "--samples", "3", "--quiet"]) == 0
    assert stored_folder(copied / "nasbox.db") == str(copied.resolve())
    assert stored_folder(moved / "nasbox.db") == str(moved.resolve())  # the other copy's own


def test_a_run_resumed_by_name_keeps_its_folder(tmp_path, monkeypatch):
    """A folder of the run's name elsewhere is not the run's: resumed by name from beside it,
    the store keeps the run's own folder."""
    storage = tmp_path / "shared.db"
    search = ["search", "--estimator", "params", "--quiet", "--storage", str(storage)]
    assert main([*search, "--samples", "2", "--out", str(tmp_path / "run")]) == 0
    (tmp_path / "elsewhere" / "run").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main([*search, "--resume", "run", "--samples", "3"]) == 0
    assert stored_folder(storage) == str((tmp_path / "run").resolve())


def test_a_killed_run_moved_or_copied_is_listed_interrupted_in_its_own_folder(tmp_path, capsys):
    """Before a resume, the store still names the folder the run was made in: a killed run moved
    elsewhere said `running` forever (no process held that missing folder), and a copy was listed
    under the original's folder. `runs` now reports the folder its database was found in."""
    import shutil

    made = tmp_path / "made"
    search = ["search", "--estimator", "params", "--samples", "2", "--quiet"]
    assert main([*search, "--out", str(made)]) == 0
    with sqlite3.connect(made / "nasbox.db") as db:  # as a search killed with SIGKILL leaves it
        db.execute("UPDATE runs SET status = 'running'")
    moved, copied = tmp_path / "runs" / "moved", tmp_path / "runs" / "copied"
    shutil.copytree(made, copied)
    shutil.move(made, moved)
    capsys.readouterr()
    assert main(["runs", "list", str(tmp_path / "runs")]) == 0
    listed = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert [(row[1], row[-1]) for row in listed] == [
        ("interrupted", str(copied.resolve())),
        ("interrupted", str(moved.resolve())),
    ]
    assert main(["runs", "show", str(moved)]) == 0
    shown = capsys.readouterr().out
    assert f"continue with nasbox search --resume {moved.resolve()})" in shown
    assert str(made) not in shown


def test_a_run_without_trials_exports_a_header_only_table(tmp_path, capsys):
    """A search killed before its first trial leaves a run without trials: `runs export` ended
    with a pandas KeyError traceback about 'told_after'; it now writes the columns alone."""
    import pandas as pd

    storage = tmp_path / "all.db"
    with RunStore(storage) as store:
        store.create_run("empty", {"space": "nb201"}, str(tmp_path / "empty"), "0")
    for out in (tmp_path / "trials.csv", tmp_path / "trials.parquet"):
        assert main(["runs", "export", "empty", "--storage", str(storage), "--out", str(out)]) == 0
        assert f"wrote 0 trials of run empty to {out}" in capsys.readouterr().out
        frame = pd.read_csv(out) if out.suffix == ".csv" else pd.read_parquet(out)
        assert len(frame) == 0 and {"number", "arch", "state", "value", "told_after"} <= set(
            frame.columns
        )


def test_runs_export_creates_the_folder_it_writes_into(tmp_path, capsys):
    """`runs export --out new/t.csv` was refused ("the folder new does not exist; create it
    first"), while score, bench convert and every other file --out create their folder."""
    storage = tmp_path / "all.db"
    with RunStore(storage) as store:
        store.create_run("empty", {"space": "nb201"}, str(tmp_path / "empty"), "0")
    out = tmp_path / "new" / "deeper" / "trials.csv"
    assert main(["runs", "export", "empty", "--storage", str(storage), "--out", str(out)]) == 0
    assert out.is_file() and f"to {out}" in capsys.readouterr().out


def test_runs_export_writes_parquet_under_the_pq_suffix_too(tmp_path, capsys):
    """`.pq` was refused ("give a .csv or .parquet file"), though tables are read from it."""
    import pandas as pd

    storage = tmp_path / "all.db"
    with RunStore(storage) as store:
        store.create_run("empty", {"space": "nb201"}, str(tmp_path / "empty"), "0")
    out = tmp_path / "trials.pq"
    assert main(["runs", "export", "empty", "--storage", str(storage), "--out", str(out)]) == 0
    assert "arch" in pd.read_parquet(out).columns
    bad = ["runs", "export", "empty", "--storage", str(storage), "--out", str(tmp_path / "t.txt")]
    assert main(bad) == 2 and "use a .csv or .parquet file name" in capsys.readouterr().err
