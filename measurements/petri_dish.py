"""Synthetic Petri Dish vs encoding-based predictors (and NASWOT on nb201), over several seeds.

Prints mean +- std of Spearman rho and Kendall tau on held-out motifs:
- slope space: K slopes from the middle of the range; held-out slopes split into interpolation
  (inside the fitted range) and extrapolation (outside it);
- nb201: K labelled cells (valid_acc), `--held-out` held-out cells. Held-out cells are drawn
  from the cells of a NASWOT score cache when one is given (so NASWOT needs no recomputation);
  "petri+naswot" ranks by the sum of the two z-scored scores.
Also the seconds to fit a dish and to predict one motif. Each run's figures are appended to
`--out` (CSV) as soon as it finishes.

    python measurements/petri_dish.py --seeds 5 --k 10,20,50,100 --held-out 1000
"""

import argparse
import csv
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from nasbox.estimators.petri import PetriDish, default_config, get_motif_space
from nasbox.estimators.petri.evaluation import (
    Labels,
    baseline_predictions,
    choose_labelled,
    compare_predictors,
    load_labels,
)
from nasbox.estimators.petri.groundtruth import slope_groundtruth

RESULTS = Path(__file__).resolve().parent / "results"


def zscore(values: np.ndarray) -> np.ndarray:
    return (values - values.mean()) / (values.std() + 1e-12)


def timed_fit(dish: PetriDish, train: Labels) -> float:
    started = time.perf_counter()
    dish.fit(train.motifs, train.values, progress=False)
    return time.perf_counter() - started


def predict_one_seconds(dish: PetriDish, motif) -> float:
    started = time.perf_counter()
    dish.predict([motif])
    return time.perf_counter() - started


def plot_slope_curves(path: Path, labels: Labels, train: Labels, dish: PetriDish, seed: int):
    """Ground truth, dish and encoding MLP across all slopes, fitted range shaded.

    Each curve is z-scored with its mean and std over the labelled slopes, the scale the dish
    and the MLP were fitted on.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    space = dish.space
    slopes = np.array(labels.motifs)
    curves = {
        "ground truth": labels.values,
        "petri dish": dish.predict(labels.motifs),
        "MLP on c": baseline_predictions(space, train, labels.motifs, seed)["mlp"],
    }
    labelled = np.isin(slopes, train.motifs)
    figure, axes = plt.subplots(figsize=(7, 4))
    axes.axvspan(min(train.motifs), max(train.motifs), color="0.9", label="fitted range")
    for name, values in curves.items():
        values = np.asarray(values, dtype=float)
        scaled = (values - values[labelled].mean()) / (values[labelled].std() + 1e-12)
        axes.plot(slopes, scaled, label=name)
        if name == "ground truth":
            axes.scatter(slopes[labelled], scaled[labelled], s=12, color="black", zorder=3,
                         label="labelled slopes")  # fmt: skip
    axes.set(xlabel="sigmoid slope c", ylabel="z-score on the labelled slopes",
             title=f"slope motifs, seed {seed}", ylim=(-8, 4))  # fmt: skip
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def run_slope(args, record) -> None:
    path = Path(args.slope_labels)
    if not path.is_file():
        print(f"no slope ground truth at {path}; running `nasbox petri groundtruth` first")
        slope_groundtruth(path)
    space = get_motif_space("slope")
    labels = load_labels(path, space)
    for seed in range(args.seeds):
        chosen, rest = choose_labelled(space, labels, args.slope_k, seed)
        train, test = labels.subset(chosen), labels.subset(rest)
        dish = PetriDish(space, default_config("slope", loss=args.loss), seed=seed)
        fit_seconds = timed_fit(dish, train)
        scores = dish.predict(test.motifs)
        results = compare_predictors(space, train, test, {"petri": scores}, seed)
        one = predict_one_seconds(dish, test.motifs[0])
        record("slope", args.slope_k, seed, results, fit_seconds, one)
        if seed == 0:
            plot = Path(args.out).with_name("petri_slope_seed0.png")
            plot_slope_curves(plot, labels, train, dish, seed)
            print(f"curves of seed 0: {plot}")


def run_nb201(args, record) -> None:
    space = get_motif_space("nb201")
    labels = load_labels(args.nb201_labels, space)
    index = {motif: i for i, motif in enumerate(labels.motifs)}
    naswot = None
    if args.naswot_scores and Path(args.naswot_scores).is_file():
        cache = pd.read_csv(args.naswot_scores)
        cache = cache[np.isfinite(cache["naswot"])].drop_duplicates("arch")
        naswot = dict(zip(space.parse_many(cache["arch"].tolist()), cache["naswot"], strict=True))
        print(f"held-out cells drawn from the {len(naswot)} cells of {args.naswot_scores}")
    else:
        print("no NASWOT cache: held-out cells drawn from the whole table, NASWOT not compared")
    overrides = {"outer_steps": args.outer_steps, "loss": args.loss}
    pool = sorted(naswot, key=space.format) if naswot else labels.motifs
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        held = [pool[i] for i in rng.choice(len(pool), size=args.held_out, replace=False)]
        held_set = set(held)
        test = labels.subset([index[m] for m in held])
        candidates = [i for i in rng.permutation(len(labels)) if labels.motifs[i] not in held_set]
        for k in args.k:
            train = labels.subset(candidates[:k])
            dish = PetriDish(space, default_config("nb201", **overrides), seed=seed)
            fit_seconds = timed_fit(dish, train)
            scores = dish.predict(test.motifs)
            predictions = {"petri": scores}
            if naswot:
                naswot_scores = np.array([naswot[m] for m in test.motifs])
                predictions["naswot"] = naswot_scores
                predictions["petri+naswot"] = zscore(scores) + zscore(naswot_scores)
            results = compare_predictors(space, train, test, predictions, seed)
            one = predict_one_seconds(dish, test.motifs[0])
            record("nb201", k, seed, results, fit_seconds, one)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", default="slope,nb201", help="comma-separated")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--k", default="10,20,50,100", help="labelled nb201 cells, comma-separated")
    parser.add_argument("--held-out", type=int, default=1000, help="held-out nb201 cells")
    parser.add_argument("--slope-k", type=int, default=18, help="labelled slopes")
    parser.add_argument("--outer-steps", type=int, help="override the nb201 dish's outer steps")
    parser.add_argument("--loss", choices=["mse", "rank"], help="default: per space")
    parser.add_argument("--slope-labels", default=str(RESULTS / "slope_groundtruth.csv"))
    parser.add_argument("--nb201-labels", default="../shared/data/nb201-cifar10.csv")
    parser.add_argument("--naswot-scores", default=str(RESULTS / "naswot_nb201_scores.csv"))
    parser.add_argument("--out", default=str(RESULTS / "petri_dish_runs.csv"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    args.k = [int(k) for k in args.k.split(",") if k]
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    handle = out.open("w", newline="")
    writer = csv.writer(handle)
    writer.writerow(["space", "k", "seed", "predictor", "motifs", "spearman", "kendall",
                     "fit_seconds", "predict_one_seconds"])  # fmt: skip
    table = defaultdict(list)
    timings = defaultdict(list)

    def record(space, k, seed, results, fit_seconds, one_seconds):
        for method, groups in results.items():
            for group, values in groups.items():
                row = [space, k, seed, method, group, values["spearman"], values["kendall"]]
                writer.writerow([*row, f"{fit_seconds:.2f}", f"{one_seconds:.4f}"])
                table[(space, k, method, group)].append((values["spearman"], values["kendall"]))
        handle.flush()
        timings[(space, k)].append((fit_seconds, one_seconds))
        petri = results["petri"]["all"]
        print(f"{space} K={k} seed {seed}: petri spearman {petri['spearman']:.3f} kendall "
              f"{petri['kendall']:.3f}; fit {fit_seconds:.1f} s, one motif {one_seconds:.3f} s",
              flush=True)  # fmt: skip

    for name in args.spaces.split(","):
        {"slope": run_slope, "nb201": run_nb201}[name](args, record)
    handle.close()

    print(f"\nmean +- std over {args.seeds} seed(s); per-run rows in {out}")
    header = f"{'space':<6} {'K':>4} {'predictor':<13} {'motifs':<14}"
    print(f"{header} {'spearman':>15} {'kendall':>15}")
    for (space, k, method, group), values in table.items():
        rho, tau = np.array(values).T
        print(f"{space:<6} {k:>4} {method:<13} {group:<14} {rho.mean():>7.3f} +- {rho.std():.3f}"
              f" {tau.mean():>7.3f} +- {tau.std():.3f}")  # fmt: skip
    for (space, k), values in timings.items():
        fit, one = np.array(values).T
        print(f"{space} K={k}: fit {fit.mean():.1f} s, predict one motif {one.mean():.3f} s")


if __name__ == "__main__":
    main()
