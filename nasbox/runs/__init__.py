"""Running searches: the ask/evaluate/tell loop and the files a run leaves behind."""

from nasbox.runs.folder import RunFolder, check_output_path, replaced_atomically
from nasbox.runs.loop import Trial, run_search
from nasbox.runs.store import TrialWriter, plot_trials, write_json

__all__ = [
    "RunFolder",
    "Trial",
    "TrialWriter",
    "plot_trials",
    "run_search",
    "check_output_path",
    "replaced_atomically",
    "write_json",
]
