"""What an estimator is: a function from architecture to a number where higher is better."""

from abc import ABC, abstractmethod
from collections.abc import Hashable
from dataclasses import dataclass, field

import torch
from torch import nn

from nasbox.benchmarks import TabularBenchmark
from nasbox.checks import MAX_SEED, check_count
from nasbox.data import ImageData, TextData
from nasbox.errors import NasboxError, note
from nasbox.spaces import SearchSpace


@dataclass
class EstimatorContext:
    """Everything an estimator may need: the space, data, a benchmark table, seed, network size."""

    space: SearchSpace
    data: ImageData | TextData | None = None
    seed: int = 0
    batch_size: int = 128
    device: str = "cpu"
    channels_last: bool = True
    build_options: dict = field(default_factory=dict)
    benchmark: TabularBenchmark | None = None
    latency_batch: int = 1  # images per timed forward pass of `latency`
    precision: str = "fp32"  # "bf16": NASWOT's forward pass under bfloat16 autocast

    def __post_init__(self) -> None:
        """A wrong field failed at the first score, deep inside torch or numpy (a space's name,
        a text corpus for image networks, seed 1.5), or was used as is (latency_batch 0 timed
        an empty batch, precision "fp16" ran in fp32; device "gpu" failed in torch). A
        batch_size above the training images is cut to them, with a note, as the CLI does."""
        space, data = self.space, self.data
        if not isinstance(space, SearchSpace):
            hint = f"get_space({space!r})" if isinstance(space, str) else "get_space(name)"
            raise NasboxError(
                f"EstimatorContext needs a SearchSpace, got {type(space).__name__}: pass {hint}"
            )
        wanted, source = (
            (TextData, "load_text") if space.modality == "text" else (ImageData, "load_data")
        )
        if data is not None and not isinstance(data, wanted):
            raise NasboxError(
                f"EstimatorContext data: space {space.name} builds {space.modality} networks, got "
                f"{type(data).__name__}: pass {source}(...) from nasbox.data, or None"
            )
        if not isinstance(self.benchmark, TabularBenchmark | None):
            raise NasboxError(
                f"EstimatorContext benchmark must be a TabularBenchmark, got "
                f"{type(self.benchmark).__name__}: pass TabularBenchmark.from_file(path)"
            )
        check_count(self.seed, "EstimatorContext seed", minimum=0, maximum=MAX_SEED)
        check_count(self.batch_size, "EstimatorContext batch_size")
        if isinstance(data, ImageData) and self.batch_size > len(data.x_train):
            note(  # the CLI cuts --batch-size first, with its own note
                f"EstimatorContext batch_size {self.batch_size} is more than the "
                f"{len(data.x_train)} training images of {data.name}; using {len(data.x_train)}"
            )
            self.batch_size = len(data.x_train)
        check_count(self.latency_batch, "EstimatorContext latency_batch")
        self.device = check_device(self.device)
        if self.precision not in ("fp32", "bf16"):
            raise NasboxError(
                f"EstimatorContext precision must be 'fp32' or 'bf16', got {self.precision!r}"
            )

    def autocast(self) -> torch.autocast:
        """The precision training-free forward passes run in (a no-op for fp32)."""
        return torch.autocast(
            self.device.split(":")[0], dtype=torch.bfloat16, enabled=self.precision == "bf16"
        )

    def require_data(self, estimator: str) -> ImageData | TextData:
        if self.data is None:
            raise NasboxError(f"estimator {estimator!r} needs data; pass --data")
        return self.data

    def require_benchmark(self, estimator: str) -> TabularBenchmark:
        if self.benchmark is None:
            raise NasboxError(f"estimator {estimator!r} needs a benchmark table; pass --benchmark")
        return self.benchmark

    def build(self, arch: Hashable) -> nn.Module:
        """A network for `arch`, initialised from `seed` so scores repeat exactly."""
        num_classes = self.data.num_classes if self.data is not None else 10
        in_channels = self.data.in_channels if self.data is not None else 3
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            network = self.space.build(
                arch, num_classes=num_classes, in_channels=in_channels, **self.build_options
            )
        return network.to(self.device, memory_format=self.memory_format)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one input: the data's, else a CIFAR image's."""
        data = self.data
        return (data.in_channels, *data.image_size) if data is not None else (3, 32, 32)

    @property
    def memory_format(self) -> torch.memory_format:
        """channels-last lets oneDNN pick its fastest CPU convolutions (about 1.5x here)."""
        return torch.channels_last if self.channels_last else torch.contiguous_format


def working_devices() -> list[str]:
    """The devices scores can run on here: the CPU, then each CUDA GPU and Apple's MPS."""
    gpus = [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    mps = ["mps"] if torch.backends.mps.is_available() else []
    return ["cpu", *(["cuda", *gpus] if gpus else []), *mps]


def check_device(device: str | torch.device) -> str:
    """`device` as torch names it, if scores can run there: an unknown name ("gpu") or "cuda"
    without CUDA failed with torch's own error at the first score."""
    working = working_devices()
    try:
        name = str(torch.device(device))
    except (RuntimeError, TypeError):
        name = None
    if name is None or (torch.device(name).type != "cpu" and name not in working):
        problem = "is not a torch device" if name is None else "is not available on this machine"
        raise NasboxError(
            f"EstimatorContext device {device!r} {problem}; use one of: {', '.join(working)}"
        )
    return name


class Estimator(ABC):
    """Scores architectures; higher is better. `-inf` means "unusable", never an exception.

    `argument` names what follows the colon in `name:ARGUMENT` (None: nothing may follow) and
    `argument_hint` how to ask for it; `cost` is the rough price of one call (`nasbox list`).
    """

    name: str
    argument: str | None = None
    argument_hint: str = ""
    cost: str = "seconds per arch"
    needs_data: bool = False  # reads --data, so commands load it
    modality: str | None = "image"  # what its networks read: "image", "text" or None for any
    positive: bool = False  # every value is above 0 (a size, a time): `E<=0` can never hold

    def __init__(self, context: EstimatorContext) -> None:
        self.context = context

    @classmethod
    def syntax(cls) -> str:
        return f"{cls.name}:{cls.argument}" if cls.argument else cls.name

    @classmethod
    def count_argument(cls, text: str, what: str, example: str) -> int:
        """A whole-number argument of at least 1 (train:EPOCHS, lm:STEPS), else one line."""
        try:
            value = int(text)
        except ValueError:
            raise NasboxError(
                f"estimator {cls.name!r} takes a whole number of {what}, e.g. {example}; "
                f"got {text!r}"
            ) from None
        return check_count(value, cls.syntax())

    @classmethod
    def from_spec(cls, context: EstimatorContext, argument: str | None) -> "Estimator":
        """The estimator for `name` (argument None) or `name:argument`, as `argument` allows."""
        if cls.argument is None:
            if argument is not None:
                raise NasboxError(f"estimator {cls.name!r} takes no ':' argument, got {argument!r}")
            return cls(context)
        if not argument:
            raise NasboxError(f"estimator {cls.name!r} needs {cls.argument_hint}")
        return cls(context, argument)

    @abstractmethod
    def __call__(self, arch: Hashable) -> float:
        """The score of `arch`."""


class MinibatchEstimator(Estimator):
    """A training-free score computed on one fixed, seeded minibatch of training images."""

    needs_data = True

    def __init__(self, context: EstimatorContext) -> None:
        super().__init__(context)
        data = context.require_data(self.name)
        images, _ = data.batch(context.batch_size, seed=context.seed)
        self.images = images.to(context.device, memory_format=context.memory_format)
