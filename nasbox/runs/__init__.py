"""Running searches: the ask/evaluate/tell loop and the files a run leaves behind."""

from nasbox.runs.loop import Trial, run_search
from nasbox.runs.store import TrialWriter, plot_trials, write_json

__all__ = ["Trial", "TrialWriter", "plot_trials", "run_search", "write_json"]
