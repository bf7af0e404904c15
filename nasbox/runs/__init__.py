"""Running searches: the ask/evaluate/tell loop, executors, the experiment store, run folders."""

from nasbox.runs.executors import (
    EstimatorSpec,
    Evaluation,
    Executor,
    ExecutorScorer,
    InlineExecutor,
    ProcessExecutor,
    SimulatedExecutor,
    evaluations_as_finished,
    evaluations_in_order,
)
from nasbox.runs.folder import (
    COMMAND_RESULTS,
    RunFolder,
    check_output_path,
    folder_in_use,
    replaced_atomically,
)
from nasbox.runs.loop import Recorder, TooManyFailures, Trial, run_search
from nasbox.runs.report import (
    TrialAppender,
    pareto_trials,
    plot_trials,
    write_json,
    write_pareto,
    write_trials_csv,
)
from nasbox.runs.store import (
    DATABASE,
    RunStore,
    StoredRun,
    StoredTrial,
    StoreRecorder,
    best_trial,
    folder_holds_run,
    locate_run,
)

__all__ = [
    "COMMAND_RESULTS",
    "DATABASE",
    "EstimatorSpec",
    "Evaluation",
    "Executor",
    "ExecutorScorer",
    "InlineExecutor",
    "ProcessExecutor",
    "Recorder",
    "RunFolder",
    "RunStore",
    "SimulatedExecutor",
    "StoreRecorder",
    "StoredRun",
    "StoredTrial",
    "TooManyFailures",
    "Trial",
    "TrialAppender",
    "best_trial",
    "check_output_path",
    "evaluations_as_finished",
    "evaluations_in_order",
    "folder_holds_run",
    "folder_in_use",
    "pareto_trials",
    "plot_trials",
    "replaced_atomically",
    "locate_run",
    "run_search",
    "write_json",
    "write_pareto",
    "write_trials_csv",
]
