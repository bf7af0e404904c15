"""NASNet-A parameters and multiply-adds against the paper (Zoph et al., 2018, Tables 1-3).

Counts are taken on the `meta` device (shapes only, no weights), without the auxiliary head,
as in the paper.

    python measurements/nasnet_counts.py
"""

import time

import torch

from nasbox.estimators.cost import count_multiply_adds, count_parameters
from nasbox.spaces import NASNET_A, get_space

# name, N, F, input side, classes, paper parameters (M), paper multiply-adds (M)
MODELS = (
    ("CIFAR-10 6@768", 6, 768, 32, 10, 3.3, None),
    ("Mobile 4@1056", 4, 1056, 224, 1001, 5.3, 564.0),
    ("Large 6@4032", 6, 4032, 331, 1001, 88.9, 23800.0),
)


def main() -> None:
    space = get_space("nasnet")
    print(
        f"{'model':<16} {'params (M)':>11} {'paper':>6} {'diff':>7} {'madds (M)':>10} "
        f"{'paper':>8} {'diff':>7} {'s':>5}"
    )
    for name, cells, filters, size, classes, paper_params, paper_madds in MODELS:
        start = time.perf_counter()
        stem = "cifar" if size < 128 else "imagenet"
        with torch.device("meta"):
            network = space.build(
                NASNET_A, cells=cells, filters=filters, num_classes=classes, stem=stem
            )
        params = count_parameters(network) / 1e6
        madds = count_multiply_adds(network, (3, size, size)) / 1e6
        seconds = time.perf_counter() - start
        madd_text = (
            f"{paper_madds:>8.0f} {100 * (madds / paper_madds - 1):>+6.1f}%"
            if paper_madds
            else f"{'-':>8} {'-':>7}"
        )
        print(
            f"{name:<16} {params:>11.3f} {paper_params:>6.1f} "
            f"{100 * (params / paper_params - 1):>+6.1f}% {madds:>10.1f} {madd_text} "
            f"{seconds:>5.1f}"
        )


if __name__ == "__main__":
    main()
