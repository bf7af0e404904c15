"""Figures drawn without pyplot: no global figure state, and the user's backend is left alone.

`pyplot` keeps every figure in a process-wide registry and needs a backend chosen for it; a
library that switched it to Agg would change a notebook user's plots. A bare `Figure` renders
to a file with Agg on its own, and skipping the pyplot import saves about 0.2 s per command.
"""

from typing import Any

from matplotlib.figure import Figure


def new_figure(
    figsize: tuple[float, float], columns: int = 1, dpi: int = 120
) -> tuple[Figure, Any]:
    """A figure and its axes: one `Axes`, or an array of `columns` of them side by side."""
    figure = Figure(figsize=figsize, dpi=dpi)
    return figure, figure.subplots(1, columns)
