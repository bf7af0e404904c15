"""Executors: where evaluations run. The search loop submits architectures and waits for results.

- `InlineExecutor`: in this process, one at a time (the default for one worker: no overhead).
- `ProcessExecutor`: N local worker processes, each with its own copy of the estimator; a trial
  that runs past its timeout or whose worker dies is reported failed and the worker replaced.
- `SimulatedExecutor`: a virtual clock that charges each evaluation a duration, to study many
  asynchronous workers without waiting.
- `RayExecutor` (in `nasbox.runs.ray_executor`): tasks on a Ray cluster.

An evaluation never raises into the loop: an exception, a NaN value, a timeout or a dead worker all
come back as an `Evaluation` with `error` set, so one bad architecture cannot stop a search.
"""

import contextlib
import heapq
import importlib
import math
import multiprocessing
import os
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait

from nasbox.cpu import keep_freed_memory
from nasbox.errors import NasboxError, shown
from nasbox.startup import worker_context

# The longest one wait for results blocks before looking again: the OS's own waits take at most
# about 2**31 milliseconds (24 days), and a longer --trial-timeout raised OverflowError mid-run.
LONGEST_WAIT_S = 3600.0


@dataclass(frozen=True)
class Evaluation:
    """A finished evaluation: its value, or the error that stopped it."""

    number: int
    arch: Hashable
    value: float | tuple[float, ...] | None  # a tuple with several objectives
    seconds: float
    error: str | None = None
    worker: str = ""
    bad_input: bool = False  # the estimator refused the user's settings: stop, don't record 100x

    @property
    def failed(self) -> bool:
        return self.error is not None


@dataclass(frozen=True)
class EstimatorSpec:
    """A picklable recipe for an estimator, so worker processes can build their own copy."""

    space: str
    estimator: str
    data: str | None = None
    data_dir: str | None = None
    image_size: int | None = None
    benchmark: str | None = None
    seed: int = 0
    batch_size: int = 128
    latency_batch: int = 1
    precision: str = "fp32"
    imports: tuple[str, ...] = ()  # modules that register user estimators (`--import`)

    def build(self) -> Callable[[Hashable], float | tuple[float, ...]]:
        for module in self.imports:
            importlib.import_module(module)
        from nasbox.benchmarks import TabularBenchmark
        from nasbox.data import load_for
        from nasbox.estimators import EstimatorContext
        from nasbox.estimators.objectives import get_evaluator
        from nasbox.spaces import get_space

        space = get_space(self.space)
        data = (
            load_for(space.modality, self.data, self.data_dir, self.image_size)
            if self.data
            else None
        )
        benchmark = TabularBenchmark.from_file(self.benchmark) if self.benchmark else None
        context = EstimatorContext(
            space,
            data,
            seed=self.seed,
            batch_size=self.batch_size,
            benchmark=benchmark,
            latency_batch=self.latency_batch,
            precision=self.precision,
        )
        return get_evaluator(self.estimator, context)


# The error of a trial whose estimator returned +inf (see `holds_inf`).
INFINITE_VALUE = "the estimator returned +inf"


def holds_inf(value: float | tuple[float, ...]) -> bool:
    """Whether a value, or one of its objectives, is +inf: an overflow, not the best cell, so
    strategies refuse it and its trial fails."""
    return math.inf in (value if isinstance(value, tuple) else (value,))


def evaluate_safely(
    estimator: Callable[[Hashable], float], arch: Hashable
) -> tuple[float | None, float, str | None, bool]:
    """(value, seconds, error, bad input): exceptions, NaN and +inf become an error, never a raise.

    A `NasboxError` (a cell missing from --benchmark, say) is the user's to fix, so it is
    flagged as bad input and ends the search; any other exception fails only this trial.
    """
    started = time.perf_counter()
    try:
        value = _as_value(estimator(arch))
    except NasboxError as err:
        return None, time.perf_counter() - started, str(err), True
    except Exception as err:  # noqa: BLE001 - any estimator failure fails only this trial
        message = " ".join(str(err).split()) or "no message"
        return None, time.perf_counter() - started, f"{type(err).__name__}: {message}", False
    seconds = time.perf_counter() - started
    parts = value if isinstance(value, tuple) else (value,)
    if any(math.isnan(part) for part in parts):
        return None, seconds, "the estimator returned NaN", False
    if holds_inf(value):
        return None, seconds, INFINITE_VALUE, False
    return value, seconds, None, False


def _as_value(result) -> float | tuple[float, ...]:
    """A number, or a tuple of numbers for several objectives. Anything else (None, a string, an
    array) is the estimator's mistake on every trial, so it ends the search as bad input."""
    try:
        if isinstance(result, tuple):
            return tuple(_float(part) for part in result)
        return _float(result)
    except (TypeError, ValueError, RuntimeError):
        raise NasboxError(
            f"the estimator returned {shown(result)} ({type(result).__name__}), which is not a "
            "number: return a float (higher is better; -inf or NaN for a failed evaluation), or "
            "a tuple of floats for several objectives"
        ) from None


def _float(value: object) -> float:
    """float(value), but a string is refused, as `Strategy.tell` refuses it."""
    if isinstance(value, str | bytes):
        raise TypeError(value)
    return float(value)


def threads_per_worker(workers: int) -> int:
    """Torch threads for each of `workers` processes, so that workers x threads = cores."""
    return max(1, len(os.sched_getaffinity(0)) // workers)


class Executor(ABC):
    """Runs up to `capacity` evaluations at once."""

    capacity: int = 1

    @abstractmethod
    def submit(self, number: int, arch: Hashable) -> None:
        """Start evaluating `arch` as trial `number` (only when fewer than `capacity` run)."""

    @abstractmethod
    def wait(self) -> list[Evaluation]:
        """Block until at least one submitted evaluation has finished; return those finished."""

    def close(self) -> None:  # noqa: B027 - executors without workers have nothing to release
        """Stop any evaluation still running and release the workers."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class InlineExecutor(Executor):
    """Evaluates in the calling process when the loop waits: no processes, no copies."""

    def __init__(self, estimator: Callable[[Hashable], float]) -> None:
        self.estimator = estimator
        self._pending: list[tuple[int, Hashable]] = []

    def submit(self, number: int, arch: Hashable) -> None:
        self._pending.append((number, arch))

    def wait(self) -> list[Evaluation]:
        number, arch = self._pending.pop(0)
        value, seconds, error, bad_input = evaluate_safely(self.estimator, arch)
        return [Evaluation(number, arch, value, seconds, error, "main", bad_input)]


class SimulatedExecutor(Executor):
    """`workers` virtual workers: each evaluation takes `duration(arch)` virtual seconds.

    Values are computed instantly; `now` is the virtual wall-clock time, which jumps to the next
    finish on every `wait`. Ties finish in submission order, so runs are reproducible.
    """

    def __init__(
        self,
        evaluate: Callable[[Hashable], float],
        duration: Callable[[Hashable], float],
        workers: int,
    ) -> None:
        if workers < 1:
            raise NasboxError(f"a simulated cluster needs at least 1 worker, got {workers}")
        self.evaluate = evaluate
        self.duration = duration
        self.capacity = workers
        self.now = 0.0
        self._running: list[tuple[float, int, Hashable, float]] = []

    def submit(self, number: int, arch: Hashable) -> None:
        seconds = float(self.duration(arch))
        heapq.heappush(self._running, (self.now + seconds, number, arch, seconds))

    def wait(self) -> list[Evaluation]:
        finish, number, arch, seconds = heapq.heappop(self._running)
        self.now = finish
        value, _, error, bad_input = evaluate_safely(self.evaluate, arch)
        return [Evaluation(number, arch, value, seconds, error, "simulated", bad_input)]


def evaluations_as_finished(executor: Executor, archs: Sequence[Hashable]) -> Iterator[Evaluation]:
    """Each architecture's evaluation as soon as it is done (numbered by its place in `archs`);
    every worker of `executor` is kept busy meanwhile."""
    waiting = deque(enumerate(archs))
    running = 0
    while waiting or running:
        while waiting and running < executor.capacity:
            executor.submit(*waiting.popleft())
            running += 1
        for evaluation in executor.wait():
            running -= 1
            yield evaluation


def evaluations_in_order(executor: Executor, archs: Sequence[Hashable]) -> Iterator[Evaluation]:
    """Each architecture's evaluation, in the order of `archs`, as soon as it and those before it
    are done; every worker of `executor` is kept busy meanwhile."""
    finished: dict[int, Evaluation] = {}
    evaluations = evaluations_as_finished(executor, archs)
    for index in range(len(archs)):
        while index not in finished:
            evaluation = next(evaluations)
            finished[evaluation.number] = evaluation
        yield finished.pop(index)


class ExecutorScorer:
    """Scores a batch of architectures on fresh executors, e.g. AREA's pre-scoring on the workers.

    `many` keeps every worker busy until all are scored; a failed evaluation scores `-inf`.
    """

    def __init__(self, make_executor: Callable[[], Executor]) -> None:
        self.make_executor = make_executor

    def __call__(self, arch: Hashable) -> float:
        return self.many([arch])[0]

    def many(self, archs: Sequence[Hashable]) -> list[float]:
        with self.make_executor() as executor:
            return [
                -math.inf if evaluation.failed else float(evaluation.value)
                for evaluation in evaluations_in_order(executor, archs)
            ]


def _exit_with(parent: int, interval: float = 0.5) -> None:
    """Exit this process as soon as process `parent` is gone: a killed parent (SIGKILL, out of
    memory) tells no one, and its workers would train on, orphaned. (The fork server, their
    real parent, outlives it: every worker holds the pipe it waits on.)"""

    def watch() -> None:
        while True:
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                os._exit(1)
            time.sleep(interval)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _worker_main(connection: Connection, spec: EstimatorSpec, threads: int, parent: int) -> None:
    """A worker process: evaluate what the parent sends until it says stop or is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _exit_with(parent)
    try:
        _serve(connection, spec, threads)
    except (EOFError, ConnectionError):
        # The parent was killed: nothing to report, and a traceback would land on its terminal.
        return


def _serve(connection: Connection, spec: EstimatorSpec, threads: int) -> None:
    """Build the estimator once, then answer each (number, arch) with its evaluation."""
    import torch
    from tqdm import tqdm

    # tqdm's default lock is a semaphore shared between processes: a worker killed mid-trial
    # (an interrupt, a timeout) leaves it registered, and Python warns of it at exit
    tqdm.set_lock(threading.RLock())

    torch.set_num_threads(threads)
    keep_freed_memory()
    try:
        estimator = spec.build()
    except Exception as err:  # noqa: BLE001 - reported to the parent as one line
        connection.send(("setup failed", f"{type(err).__name__}: {err}"))
        return
    connection.send(("ready", None))
    while (message := connection.recv()) is not None:
        number, arch = message
        connection.send((number, *evaluate_safely(estimator, arch)))


@dataclass
class _Slot:
    """One worker process and the trial it is running, if any."""

    index: int
    process: multiprocessing.process.BaseProcess
    connection: Connection
    trial: tuple[int, Hashable, float] | None = None  # number, arch, start time

    @property
    def name(self) -> str:
        return f"process-{self.index}:{self.process.pid}"


class ProcessExecutor(Executor):
    """`workers` local processes of `threads` torch threads each (None: the cores shared out);
    `timeout` seconds per trial (None: no limit). `spec` is any picklable object whose `build()`
    returns the estimator, as `EstimatorSpec` does.

    Workers come from a fork server (forking a fresh, single-threaded server is safe with torch
    and much faster than spawning), so replacing a killed worker takes well under a second. The
    `nasbox` command starts that server before its own imports (`nasbox.startup`).
    """

    def __init__(
        self,
        spec: EstimatorSpec,
        workers: int,
        timeout: float | None = None,
        threads: int | None = None,
    ) -> None:
        if workers < 1:
            raise NasboxError(f"--workers must be at least 1, got {workers}")
        self.spec = spec
        self.capacity = workers
        self.timeout = timeout
        self.threads = threads or threads_per_worker(workers)
        self._context = worker_context()
        self._slots: list[_Slot] = []

    def _start_worker(self, index: int) -> _Slot:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_worker_main, args=(child, self.spec, self.threads, os.getpid()), daemon=True
        )
        process.start()
        child.close()
        return _Slot(index, process, parent)

    def _ensure_workers(self) -> None:
        if self._slots:
            return
        self._slots = [self._start_worker(i) for i in range(self.capacity)]
        for slot in self._slots:
            self._await_ready(slot)

    def _await_ready(self, slot: _Slot) -> None:
        try:
            status, detail = slot.connection.recv()
        except EOFError:
            status, detail = "setup failed", f"exit code {slot.process.exitcode}"
        if status != "ready":
            self.close()
            raise NasboxError(f"a worker process could not build the estimator ({detail})")

    def submit(self, number: int, arch: Hashable) -> None:
        self._ensure_workers()
        slot = next(slot for slot in self._slots if slot.trial is None)
        slot.trial = (number, arch, time.monotonic())
        slot.connection.send((number, arch))

    def _replace(self, slot: _Slot) -> None:
        slot.process.kill()
        slot.process.join()
        slot.connection.close()
        fresh = self._start_worker(slot.index)
        self._await_ready(fresh)
        self._slots[slot.index] = fresh

    def _failed(self, slot: _Slot, error: str) -> Evaluation:
        number, arch, started = slot.trial
        evaluation = Evaluation(number, arch, None, time.monotonic() - started, error, slot.name)
        self._replace(slot)
        return evaluation

    def wait(self) -> list[Evaluation]:
        busy = [slot for slot in self._slots if slot.trial is not None]
        if not busy:
            raise RuntimeError("wait() with nothing submitted")
        while True:
            timeout = None
            if self.timeout is not None:
                now = time.monotonic()
                timeout = max(0.0, min(s.trial[2] + self.timeout - now for s in busy))
                timeout = min(timeout, LONGEST_WAIT_S)
            ready = set(
                wait([s.connection for s in busy] + [s.process.sentinel for s in busy], timeout)
            )
            finished = []
            for slot in busy:
                if slot.connection in ready or slot.process.sentinel in ready:
                    finished.append(self._collect(slot))
                elif self.timeout is not None and time.monotonic() - slot.trial[2] >= self.timeout:
                    finished.append(
                        self._failed(slot, f"timed out after {self.timeout:g} s (--trial-timeout)")
                    )
            if finished:
                return finished

    def _collect(self, slot: _Slot) -> Evaluation:
        try:
            if slot.connection.poll():
                number, value, seconds, error, bad_input = slot.connection.recv()
                arch = slot.trial[1]
                slot.trial = None
                return Evaluation(number, arch, value, seconds, error, slot.name, bad_input)
        except (EOFError, OSError):
            pass
        slot.process.join(timeout=1)
        code = slot.process.exitcode
        cause = (
            f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        )
        return self._failed(slot, f"the worker process died ({cause})")

    def close(self) -> None:
        for slot in self._slots:
            if slot.trial is None and slot.process.is_alive():
                with contextlib.suppress(OSError):
                    slot.connection.send(None)
            else:
                slot.process.kill()
        for slot in self._slots:
            slot.process.join(timeout=5)
            if slot.process.is_alive():
                slot.process.kill()
            slot.connection.close()
        self._slots = []
