"""`lm:STEPS`: train a recurrent cell's language model briefly and score its validation perplexity.

The training is the rnn ground-truth protocol (`RNNProtocol`: 64 hidden units, chunks of
--batch-size streams x 20 characters, Adam with a cosine schedule) cut to STEPS chunks, so
`lm:800` scores a cell as `nasbox petri groundtruth --space rnn` does. Every estimator is
maximised, so the value is minus the perplexity: -6.2 beats -6.5. Training runs on one thread
(as `nasbox train` does for small cells) and writes nothing to disk.
"""

from collections.abc import Hashable
from dataclasses import replace

import torch

from nasbox.checks import check_seed
from nasbox.cpu import single_thread
from nasbox.data import TextData
from nasbox.errors import NasboxError
from nasbox.estimators.base import Estimator, EstimatorContext
from nasbox.estimators.petri.rnn_groundtruth import RNNProtocol, train_cell


class LanguageModelEstimator(Estimator):
    """Minus the validation perplexity after STEPS chunks of the rnn ground-truth training."""

    needs_data = True
    modality = "text"
    name = "lm"
    argument = "STEPS"
    argument_hint = "a number of training chunks, e.g. lm:800 (the ground-truth protocol)"
    cost = "trains the cell's language model from 2 initialisations for STEPS chunks (lm:800: 60 s)"

    def __init__(self, context: EstimatorContext, steps: str) -> None:
        super().__init__(context)
        count = self.count_argument(steps, "training chunks", "lm:800")
        data = context.require_data(self.syntax())
        if not isinstance(data, TextData):
            raise NasboxError("estimator 'lm' trains language models; pass --data text:FILE")
        self.protocol = replace(
            RNNProtocol(),
            steps=count,
            batch_size=context.batch_size,
            seed=context.seed,
        )
        later = self.protocol.initialisations - 1
        check_seed(
            self.protocol.last_seed(),
            f"--seed + {later} (lm trains from --seed to --seed + {later})",
        )
        data.check_batch(self.protocol.batch_size, self.protocol.bptt, remedy="--batch-size")
        self.data = data

    def __call__(self, arch: Hashable) -> float:
        with torch.random.fork_rng(devices=[]), single_thread():
            return -train_cell(arch, self.data, self.protocol)
