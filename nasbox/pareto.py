"""Pareto fronts of several objectives, all maximised: dominance, NSGA-II's sorting, hypervolume.

Points are rows of a (n, m) array; a point dominates another when it is at least as good in every
objective and better in one. Minimised objectives are negated before they get here.
"""

import numpy as np


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.all(a >= b) and np.any(a > b))


def non_dominated_fronts(points: np.ndarray) -> list[np.ndarray]:
    """Indices of each front in turn (NSGA-II's fast non-dominated sort), best front first."""
    points = np.asarray(points, dtype=float)
    n = len(points)
    if n == 0:
        return []
    at_least = (points[:, None, :] >= points[None, :, :]).all(axis=2)
    better = (points[:, None, :] > points[None, :, :]).any(axis=2)
    beats = at_least & better  # beats[i, j]: i dominates j
    dominated_by = beats.sum(axis=0)
    fronts = []
    current = np.flatnonzero(dominated_by == 0)
    while len(current):
        fronts.append(current)
        dominated_by = dominated_by - beats[current].sum(axis=0)
        dominated_by[current] = -1
        current = np.flatnonzero(dominated_by == 0)
    return fronts


def pareto_front(points: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated points, in input order; equal points all stay."""
    points = np.asarray(points, dtype=float)
    if len(points) == 0:
        return np.zeros(0, dtype=int)
    order = np.lexsort(tuple(-points[:, k] for k in reversed(range(points.shape[1]))))
    kept: list[int] = []
    for index in order:
        if not any(dominates(points[other], points[index]) for other in kept):
            kept.append(int(index))
    return np.sort(np.asarray(kept, dtype=int))


def crowding_distance(points: np.ndarray) -> np.ndarray:
    """NSGA-II's crowding distance within one front; the extremes of each objective get inf."""
    points = np.asarray(points, dtype=float)
    n, m = points.shape
    distance = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    with np.errstate(invalid="ignore"):  # failed cells (-inf) crowd nothing
        for k in range(m):
            order = np.argsort(points[:, k], kind="stable")
            values = points[order, k]
            span = values[-1] - values[0]
            distance[order[0]] = distance[order[-1]] = np.inf
            if np.isfinite(span) and span > 0:
                distance[order[1:-1]] += (values[2:] - values[:-2]) / span
    return np.nan_to_num(distance, nan=0.0, posinf=np.inf)


def hypervolume(points: np.ndarray, reference: np.ndarray) -> float:
    """The volume dominated by `points` and dominating `reference` (maximisation).

    Exact: a sweep in two objectives, slicing along the last objective in more (fine for the
    few hundred points of a search's front).
    """
    points = np.asarray(points, dtype=float).reshape(-1, len(reference))
    reference = np.asarray(reference, dtype=float)
    points = points[(points > reference).all(axis=1)]
    if len(points) == 0:
        return 0.0
    points = points[pareto_front(points)]
    if points.shape[1] == 1:
        return float(points[:, 0].max() - reference[0])
    if points.shape[1] == 2:
        order = np.argsort(-points[:, 0], kind="stable")
        volume, best_second = 0.0, reference[1]
        for x, y in points[order]:
            if y > best_second:
                volume += (x - reference[0]) * (y - best_second)
                best_second = y
        return float(volume)
    order = np.argsort(-points[:, -1], kind="stable")
    levels = points[order, -1]
    volume = 0.0
    for i in range(len(order)):
        lower = levels[i + 1] if i + 1 < len(order) else reference[-1]
        if levels[i] > lower:
            volume += (levels[i] - lower) * hypervolume(points[order[: i + 1], :-1], reference[:-1])
    return float(volume)
