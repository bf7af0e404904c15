"""Export a network as ONNX or TorchScript, checked against PyTorch before the file is kept.

ONNX goes through PyTorch's TorchScript-based exporter (`dynamo=False`): it exports every space's
network in well under a second and needs only `onnx` and `onnxruntime` (for the checks), where
the `torch.export`-based exporter takes seconds per network and needs `onnxscript` too. Batch,
height and width stay dynamic. The file is written under a temporary name, checked (ONNX:
`onnx.checker` and one onnxruntime run; TorchScript: reloaded and run) against PyTorch on random
images, and renamed only when the outputs match, so a bad export never replaces anything.
"""

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from nasbox.cpu import check_fits_memory, gib
from nasbox.errors import NasboxError, error_reason
from nasbox.runs.folder import folder_in_use, replaced_atomically
from nasbox.spaces import SPACES
from nasbox.tensor_files import load_failure, load_tensors

FORMATS = ("onnx", "torchscript")
SHOWN_CLASSES = 20  # class names printed by `nasbox export`; settings.json holds them all
SUFFIXES = {".onnx": "onnx", ".pt": "torchscript"}
INSTALL = "pip install 'nasbox[export]' (or: pip install onnx onnxruntime)"
#: Opset 17 runs on every onnxruntime since 1.13 and has every op the spaces use.
OPSET = 17
#: Largest accepted |exported - PyTorch| difference, relative to the largest logit above 1.
TOLERANCE = 1e-4
#: Traced on a batch of two and checked on a batch of three, so the dynamic batch is checked too.
TRACE_BATCH, CHECK_BATCH = 2, 3
#: ONNX holds a network in one protobuf message of under 2 GiB; torch writes larger weights as
#: loose files beside --out, one per tensor and named after it (overwriting any such file).
ONNX_MAX_BYTES = 2**31
#: The network, the exported copy and the check's reloaded one each hold the weights.
WEIGHT_COPIES = 3


def export_format(path: Path, given: str | None) -> str:
    """`given`, or the format that `path`'s suffix names."""
    if given is not None:
        return given
    try:
        return SUFFIXES[path.suffix.lower()]
    except KeyError:
        raise NasboxError(
            f"--out {path}: cannot tell the format from the name; name it .onnx or .pt, or pass "
            f"--format {' or '.join(FORMATS)}"
        ) from None


def require_onnx() -> None:
    """Fail before any work when the `export` extra is missing."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as err:
        raise NasboxError(f"--format onnx needs {err.name or 'onnx'}: {INSTALL}") from None


def check_export_size(parameters: int, input_shape: tuple[int, int, int], fmt: str) -> None:
    """Refuse, before the network is built, one that ONNX cannot hold in one file or that does
    not fit in memory (building it ended in an allocation traceback)."""
    weights = 4 * parameters
    smaller = "give a smaller --filters, --cells, --classes or --in-channels"
    if fmt == "onnx" and weights >= ONNX_MAX_BYTES:
        raise NasboxError(
            f"the network's weights take {gib(weights)} and an ONNX file holds at most "
            f"{gib(ONNX_MAX_BYTES)}; {smaller}, or write TorchScript (--format torchscript)"
        )
    images = 4 * (TRACE_BATCH + CHECK_BATCH) * input_shape[0] * input_shape[1] * input_shape[2]
    check_fits_memory(
        WEIGHT_COPIES * weights + images,
        f"exporting this network (its weights {WEIGHT_COPIES} times over and the check's images)",
        f"{smaller}, or a smaller --input",
    )


@dataclass(frozen=True)
class Checkpoint:
    """The weights of a `nasbox train` run and what its folder says about the network."""

    path: Path
    weights: dict[str, torch.Tensor]
    description: str
    epochs: int
    settings: dict
    still_training: bool

    @classmethod
    def read(cls, path: Path) -> "Checkpoint":
        """A run folder or its checkpoint.pt; loaded with `weights_only`, so a file from
        elsewhere cannot run code. A run still training is read at its last finished epoch."""
        if path.is_dir():
            path = path / "checkpoint.pt"
        still_training = folder_in_use(path.parent) is True
        if not path.is_file() and still_training:
            raise NasboxError(
                f"--checkpoint {path.parent}: the run is still training its first epoch, and "
                "checkpoint.pt is written when an epoch ends; export it after that"
            )
        if not path.is_file():
            raise NasboxError(
                f"--checkpoint {path}: file not found (expected the checkpoint.pt of a "
                "`nasbox train` run)"
            )
        try:
            state = load_tensors(path)
        except Exception as err:  # torch and pickle raise many types for a corrupt file
            raise NasboxError(
                f"--checkpoint {path}: not a readable checkpoint ({load_failure(err)})"
            ) from None
        if not isinstance(state, dict) or not isinstance(state.get("network"), dict):
            raise NasboxError(f"--checkpoint {path}: not a `nasbox train` checkpoint")
        checkpoint = cls(
            path,
            state["network"],
            str(state.get("description", "")),
            len(state.get("history", [])),
            _run_settings(path.parent / "settings.json"),
            still_training,
        )
        checkpoint.check_finite()
        return checkpoint

    def check_finite(self) -> None:
        """NaN or infinite weights make NaN outputs, which the export's check then reported
        only as "outputs differ by nan"; they are named before any work."""
        weights = self.inference_weights()
        broken = [
            key
            for key, value in weights.items()
            if value.is_floating_point() and not torch.isfinite(value).all()
        ]
        if broken:
            lr = self.settings.get("lr")
            lower = f" than the run's {lr:g}" if isinstance(lr, (int, float)) else ""
            raise NasboxError(
                f"--checkpoint {self.path}: NaN or infinite values in {len(broken)} of its "
                f"{len(weights)} weight tensors ({broken[0]} first): the training diverged, and "
                f"the network would output NaN; train it again with a lower --lr{lower}"
            )

    def normalisation(self) -> str | None:
        """How training normalised the images, which the exported network expects as well; None
        for a run whose settings.json does not record it (trained before it did)."""
        recorded = self.settings.get("normalisation")
        try:
            mean, std = (
                ", ".join(f"{float(v):.6g}" for v in recorded[key]) for key in ("mean", "std")
            )
        except (TypeError, KeyError, ValueError):
            return None
        return f"(pixels / 255 - mean) / std per channel; mean ({mean}), std ({std})"

    def class_names(self) -> str | None:
        """Which output is which class ("0 cat, 1 dog"), for data whose classes have names
        (folder:DIR's folders); None where the run recorded none."""
        names = self.settings.get("classes")
        if not isinstance(names, list) or not names:
            return None
        shown = ", ".join(f"{number} {name}" for number, name in enumerate(names[:SHOWN_CLASSES]))
        return shown + (f", ... ({len(names)} in all)" if len(names) > SHOWN_CLASSES else "")

    def check_space(self, space: str) -> None:
        """The run's description starts with its space's name: a checkpoint of another space
        is named as such, before its architecture is read as one of `space`'s. A language
        model's checkpoint is refused whatever `space` is: advising its own space looped
        into export's refusal of text spaces."""
        trained = self.description.split(" ", 1)[0] if self.description else space
        if trained in SPACES and SPACES.get(trained).modality != "image":
            raise NasboxError(
                f"--checkpoint {self.path} holds a language model (space {trained}), and "
                "nasbox export writes image classifiers only (traced and checked on N x C x H x "
                "W images, where a language model reads token ids and carries a hidden state); "
                f"load its weights in PyTorch: torch.load('{self.path}', "
                "weights_only=True)['network']"
            )
        if trained != space:
            raise NasboxError(
                f"--checkpoint {self.path} was trained in space {trained}, not {space}; pass "
                f"--space {trained} and the --arch it was trained with"
            )

    def check_architecture(self, space: str, arch: str) -> None:
        """Ops without weights (pooling, skip) leave the weights' shapes alone, so the
        architecture is checked by name against the one the run trained."""
        if self.description and not self.description.startswith(f"{space} {arch} "):
            raise NasboxError(
                f"--checkpoint {self.path} was trained as {self.description!r}, not as "
                f"{space} {arch}; give the --arch it was trained with (left out, the run "
                "folder's settings.json supplies it)"
            )

    def inference_weights(self) -> dict[str, torch.Tensor]:
        """The weights without the auxiliary head, which only helps training."""
        return {
            key: value for key, value in self.weights.items() if not key.startswith("auxiliary.")
        }

    def channels_and_classes(self) -> tuple[int, int]:
        """(input channels, classes): every space's network starts with a convolution and ends
        with a linear classifier."""
        kernels = [value for value in self.weights.values() if value.dim() == 4]
        matrices = [value for value in self.weights.values() if value.dim() == 2]
        if not kernels or not matrices:
            raise NasboxError(
                f"--checkpoint {self.path}: no convolution or classifier weights; pass "
                "--in-channels and --classes"
            )
        return int(kernels[0].shape[1]), int(matrices[-1].shape[0])

    def load_into(self, network: nn.Module) -> None:
        """Load the weights, or say in one line which one does not fit `network`."""
        weights = self.inference_weights()
        expected = network.state_dict()
        missing = [key for key in expected if key not in weights]
        extra = [key for key in weights if key not in expected]
        resized = [
            key for key in expected if key in weights and weights[key].shape != expected[key].shape
        ]
        if missing:
            problem = f"the network's {missing[0]} is not in it ({len(missing)} missing)"
        elif extra:
            problem = f"its {extra[0]} is not in the network ({len(extra)} more weights)"
        elif resized:
            key = resized[0]
            problem = (
                f"{key} is {tuple(weights[key].shape)} in it but {tuple(expected[key].shape)} in "
                "the network"
            )
        else:
            network.load_state_dict(weights)
            return
        raise NasboxError(
            f"--checkpoint {self.path} does not fit the network: {problem}; give the options it "
            "was trained with (--cells, --filters, --stem, --classes, --in-channels)"
        )


def _run_settings(path: Path) -> dict:
    """The run's settings.json (what `nasbox train` was given), or nothing when absent."""
    if not path.is_file():
        return {}
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise NasboxError(f"{path}: not a readable settings file ({type(err).__name__})") from None
    return settings if isinstance(settings, dict) else {}


@contextmanager
def _tracer_warnings_quiet() -> Iterator[None]:
    """torch >= 2.9 marks TorchScript and its ONNX exporter deprecated (both still work), and
    the tracer warns about Python branches it fixes; the check of the written file is what
    tells whether the export is right, so the user is spared these warnings."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Constant folding")
        yield


def export_network(
    network: nn.Module, path: Path, fmt: str, input_shape: tuple[int, int, int], seed: int = 0
) -> float:
    """Write `network` in evaluation mode to `path`; return the largest |exported - PyTorch|
    difference of the logits on `CHECK_BATCH` random images of `input_shape` (C, H, W)."""
    network.eval()
    generator = torch.Generator().manual_seed(seed)
    example = torch.randn(TRACE_BATCH, *input_shape, generator=generator)
    images = torch.randn(CHECK_BATCH, *input_shape, generator=generator)
    with torch.no_grad():
        expected = network(images)
    with replaced_atomically(path) as temporary, _tracer_warnings_quiet():
        if fmt == "onnx":
            actual = _write_onnx(network, example, images, temporary)
        else:
            actual = _write_torchscript(network, example, images, temporary)
        difference = float((actual - expected).abs().max())
        if not difference <= TOLERANCE * max(1.0, float(expected.abs().max())):
            raise NasboxError(
                f"the exported network's outputs differ from PyTorch's by {difference:.3g} "
                f"(more than {TOLERANCE:g}); {path} was not written"
            )
    return difference


def _write_onnx(
    network: nn.Module, example: torch.Tensor, images: torch.Tensor, path: Path
) -> torch.Tensor:
    """Export, check the model and return onnxruntime's logits for `images`."""
    import onnx
    import onnxruntime

    torch.onnx.export(
        network,
        (example,),
        str(path),
        dynamo=False,
        opset_version=OPSET,
        input_names=["images"],
        output_names=["logits"],
        dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch"}},
    )
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as err:
        raise NasboxError(f"onnx.checker rejects the exported network: {err}") from None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"images": images.numpy()})
    return torch.from_numpy(logits)


def _write_torchscript(
    network: nn.Module, example: torch.Tensor, images: torch.Tensor, path: Path
) -> torch.Tensor:
    """Trace, save, reload and return the reloaded module's logits for `images`."""
    traced = torch.jit.trace(network, example, check_trace=False)
    try:
        torch.jit.save(traced, str(path))
    except RuntimeError as err:  # torch's writer reports an unwritable place this way
        reason = error_reason(err)
        raise NasboxError(
            f"{path.parent}: cannot write the TorchScript file there ({reason})"
        ) from None
    with torch.no_grad():
        return torch.jit.load(str(path))(images)
