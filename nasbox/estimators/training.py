"""`train:EPOCHS`: train each candidate briefly and score it by validation accuracy (NASNet's loop).

The validation images are a seeded, per-class 20% of the training images, so a search never sees
the test split it is later judged on. Nothing is written to disk.
"""

from collections.abc import Hashable

import torch

from nasbox.estimators.base import Estimator, EstimatorContext
from nasbox.train import TrainConfig, train
from nasbox.train.trainer import NonFiniteLoss

VALIDATION_FRACTION = 0.2


class TrainingEstimator(Estimator):
    """Validation accuracy (%) after training the candidate for EPOCHS epochs on --data."""

    needs_data = True
    name = "train"
    argument = "EPOCHS"
    argument_hint = "an epoch count, e.g. train:2"
    cost = "trains the network for EPOCHS epochs per arch (minutes)"

    def __init__(self, context: EstimatorContext, epochs: str) -> None:
        super().__init__(context)
        self.epochs = self.count_argument(epochs, "epochs", "train:2")
        data = context.require_data(self.syntax())
        self.data = data.split_validation(VALIDATION_FRACTION, context.seed)
        self.config = TrainConfig(
            epochs=self.epochs, batch_size=context.batch_size, seed=context.seed
        ).for_data(self.data)

    def __call__(self, arch: Hashable) -> float:
        network = self.context.build(arch)
        with torch.random.fork_rng(devices=[]):
            try:
                history = train(network, self.data, self.config, None, progress=False)
            except NonFiniteLoss:
                return float("-inf")
        return float(history[-1]["test_acc"])
