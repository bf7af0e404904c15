"""`--executor ray`: evaluations as Ray tasks, on a local Ray instance or a cluster.

On a cluster, start Ray as usual (`ray start --head` on one machine, `ray start --address=HEAD:6379`
on the others, with nasbox installed on every machine) and pass `--ray-address HEAD:6379`. Each
worker process builds the estimator once and keeps it for later tasks. Ray is optional:
`pip install nasbox[ray]`.
"""

import os
import socket
import time
from collections.abc import Callable, Hashable
from pathlib import Path

from nasbox.errors import NasboxError
from nasbox.runs.executors import (
    LONGEST_WAIT_S,
    EstimatorSpec,
    Evaluation,
    Executor,
    evaluate_safely,
)

_ESTIMATORS: dict[EstimatorSpec, Callable[[Hashable], float]] = {}
# What a task answers when its worker cannot build the estimator (a module or file missing there).
SETUP_FAILED = "setup failed"
# What a task answers first, once its worker holds the estimator: --trial-timeout counts from then,
# not from the submission (a task may wait for a free CPU, a fresh worker to import torch).
STARTED = "started"


def _evaluate_task(spec: EstimatorSpec, arch: Hashable, threads: int):
    """The Ray task, a generator: STARTED, then `evaluate_safely`'s outcome and the node (the
    estimator is cached per worker); a worker that cannot build it answers only
    (SETUP_FAILED, the error, the node)."""
    import ray
    import torch

    torch.set_num_threads(threads)
    node = ray.get_runtime_context().get_node_id()[:8]
    if spec not in _ESTIMATORS:
        try:
            _ESTIMATORS[spec] = spec.build()
        except Exception as err:  # noqa: BLE001 - the driver reports it as one line
            yield SETUP_FAILED, f"{type(err).__name__}: {' '.join(str(err).split())}", node
            return
    yield STARTED
    yield (*evaluate_safely(_ESTIMATORS[spec], arch), node)


# A gRPC client's first bytes: the HTTP/2 preface and an empty SETTINGS frame. Ray's GCS (gRPC)
# answers with a SETTINGS frame of its own; a web server (the dashboard's port) does not.
HTTP2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
HTTP2_SETTINGS = 4  # the frame type, the 4th byte of a frame


def _answers_http2(server: socket.socket) -> bool:
    """Whether `server` answers a gRPC client's first bytes as gRPC does."""
    server.sendall(HTTP2_HELLO)
    return server.recv(9)[3:4] == bytes([HTTP2_SETTINGS])


def _check_reachable(address: str, source: str, instead: str) -> None:
    """Fail in a second with one line, rather than after Ray's long connection retries
    (`source` names where the address came from, `instead` how to start a local Ray)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=3) as server:
            uses_tls = os.environ.get("RAY_USE_TLS", "0").lower() not in ("0", "false")
            speaks_grpc = uses_tls or _answers_http2(server)  # TLS: no plain bytes to check
    except (OSError, ValueError):
        raise NasboxError(
            f"{source} {address}: no Ray cluster answers there; start one with "
            f"`ray start --head` or {instead} to start a local one"
        ) from None
    if not speaks_grpc:
        raise NasboxError(
            f"{source} {address}: something answers there, but not Ray (a web server, such as "
            "the dashboard's port?); give the port `ray start --head` printed, 6379 by default"
        )


def _use_cluster_token() -> None:
    """`ray start --head` (Ray >= 2.59) enables token authentication and saves the token in
    ~/.ray/auth_token; a driver joining it must ask for token mode, so do that when the user has
    a token and chose no mode. Also quiet the core's per-second retry warnings."""
    if "RAY_AUTH_MODE" not in os.environ and (Path.home() / ".ray" / "auth_token").is_file():
        os.environ["RAY_AUTH_MODE"] = "token"
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")


def _check_trials_fit(ray, cpus_per_trial: float, gpus_per_trial: float) -> None:
    """Refuse per-trial resources no node has: Ray would queue such a task forever, silently."""
    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    if any(
        node.get("CPU", 0) >= cpus_per_trial and node.get("GPU", 0) >= gpus_per_trial
        for node in nodes
    ):
        return
    sizes = ", ".join(
        f"{node.get('CPU', 0):g} CPUs and {node.get('GPU', 0):g} GPUs" for node in nodes
    )
    raise NasboxError(
        f"--cpus-per-trial {cpus_per_trial:g} --gpus-per-trial {gpus_per_trial:g}: no node of "
        f"the Ray cluster has that much (its nodes have {sizes or 'nothing'}); ask for less, "
        "or add a node that has it"
    )


class RayExecutor(Executor):
    """Submits each evaluation as a Ray task; `workers` in flight (default: CPUs / per trial)."""

    def __init__(
        self,
        spec: EstimatorSpec,
        *,
        address: str | None = None,
        workers: int | None = None,
        cpus_per_trial: float = 1.0,
        gpus_per_trial: float = 0.0,
        timeout: float | None = None,
    ) -> None:
        source, instead = "--ray-address", "leave --ray-address out"
        if address is None and os.environ.get("RAY_ADDRESS"):  # Ray would join it: check it too
            address = os.environ["RAY_ADDRESS"]
            source, instead = "RAY_ADDRESS (set in the environment)", "unset RAY_ADDRESS"
        if address not in (None, "auto", "local"):
            _check_reachable(address, source, instead)
            _use_cluster_token()  # before Ray is imported: it reads the mode then
        try:
            import ray
        except ImportError:
            raise NasboxError(
                "--executor ray needs Ray; install it with: pip install 'nasbox[ray]'"
            ) from None
        self._ray = ray
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            try:
                ray.init(
                    address=address,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level="ERROR",
                    configure_logging=True,
                )
            except (ConnectionError, RuntimeError, ValueError) as err:
                raise NasboxError(
                    f"cannot start or join Ray ({err}); a cluster with token authentication "
                    "needs RAY_AUTH_MODE=token and its token (`ray get-auth-token`)"
                ) from None
        try:
            _check_trials_fit(ray, cpus_per_trial, gpus_per_trial)
        except NasboxError:
            self.close_ray()
            raise
        cpus = ray.cluster_resources().get("CPU", 1.0)
        self.capacity = workers or max(1, int(cpus // cpus_per_trial))
        self.threads = max(1, int(cpus_per_trial))
        self.spec = spec
        self.timeout = timeout
        self._task = ray.remote(num_cpus=cpus_per_trial, num_gpus=gpus_per_trial, max_retries=0)(
            _evaluate_task
        )
        self._running: dict = {}  # task's generator -> (number, arch, start time or None)

    def submit(self, number: int, arch: Hashable) -> None:
        task = self._task.remote(self.spec, arch, self.threads)
        self._running[task] = (number, arch, None)

    def wait(self) -> list[Evaluation]:
        while True:
            ready, _ = self._ray.wait(list(self._running), num_returns=1, timeout=self._time_left())
            finished = [evaluation for task in ready if (evaluation := self._next(task))]
            if self.timeout is not None:
                now = time.monotonic()
                for task, (number, arch, started) in list(self._running.items()):
                    if started is not None and now - started >= self.timeout:
                        self._ray.cancel(task, force=True)
                        del self._running[task]
                        error = f"timed out after {self.timeout:g} s (--trial-timeout)"
                        finished.append(Evaluation(number, arch, None, now - started, error, "ray"))
            if finished:
                return finished

    def _time_left(self) -> float | None:
        """Seconds until the first started evaluation runs past --trial-timeout (None: no limit)."""
        starts = [started for _, _, started in self._running.values() if started is not None]
        if self.timeout is None or not starts:
            return None
        return min(max(0.0, min(starts) + self.timeout - time.monotonic()), LONGEST_WAIT_S)

    def _next(self, task) -> Evaluation | None:
        """The task's evaluation, or None when it has only just started evaluating."""
        number, arch, started = self._running.pop(task)
        try:
            outcome = self._ray.get(next(task))
        except self._ray.exceptions.RayError as err:
            message = " ".join(str(err).split())[:300]
            cause = "the worker process died" if "died" in message.lower() else "Ray task failed"
            seconds = time.monotonic() - started if started is not None else 0.0
            return Evaluation(number, arch, None, seconds, f"{cause}: {message}", "ray")
        if outcome == STARTED:
            self._running[task] = (number, arch, time.monotonic())
            return None
        if outcome[0] == SETUP_FAILED:
            _, error, node = outcome
            raise NasboxError(
                f"a Ray worker on node {node} could not build the estimator ({error}); every "
                "node needs nasbox, the --import modules and the data at the same paths"
            )
        value, seconds, error, bad_input, node = outcome
        return Evaluation(number, arch, value, seconds, error, f"ray:{node}", bad_input)

    def close(self) -> None:
        for ref in self._running:
            self._ray.cancel(ref, force=True)
        self._running.clear()
        self.close_ray()

    def close_ray(self) -> None:
        if self._owns_ray:  # a local instance we started goes with us; a cluster stays up
            self._ray.shutdown()
