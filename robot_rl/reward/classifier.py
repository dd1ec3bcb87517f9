"""The success classifier: camera frames -> P(the task is achieved now), its file, and its debounce.

Shapes: B batch, H/W image height/width (the same for every camera), F features per camera.
The model encodes each camera with the project's image encoders (robot_rl/nets/encoders.py: the
DrQ conv encoder, or ResNet-18, pretrained and frozen if asked) and a small MLP head turns the
concatenated features into one logit.

The file (`save_classifier`, written atomically like the run's checkpoints) holds the model's
spec (cameras, image size, encoder), the decision threshold, the training metrics and the
weights; it loads with weights_only=True, so it carries no code. `load_classifier` and
`check_fits` refuse a missing, corrupt or foreign file and a classifier whose cameras or image
size differ from what it is asked to watch, each with one line naming what is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from robot_rl.nets.encoders import ConvEncoder, ResNetEncoder
from robot_rl.runtime.checkpoint import save_checkpoint

FORMAT = "robot_rl/success_classifier"
FORMAT_VERSION = 1
ENCODERS = ("conv", "resnet18")


class ClassifierError(ValueError):
    """A classifier file that cannot be used: missing, unreadable, foreign, or not fitting."""


@dataclass(frozen=True)
class ClassifierSpec:
    """What the model sees and how it is built; stored in the file, checked against the env."""

    cameras: tuple[str, ...]  # sorted; the frames of every one are needed for a verdict
    image_size: tuple[int, int]  # (H, W) of every camera's frames
    encoder: str = "conv"  # conv (DrQ encoder, trained) | resnet18
    feature_dim: int = 64  # per camera
    channels: int = 16  # conv filters per layer (conv only)
    hidden_dim: int = 128  # of the head
    resnet_frozen: bool = True  # resnet18: train only its projection and the head

    def __post_init__(self) -> None:
        if not self.cameras or any(not isinstance(c, str) or not c for c in self.cameras):
            raise ValueError(f"a classifier needs at least one named camera, got {self.cameras!r}")
        object.__setattr__(self, "cameras", tuple(sorted(self.cameras)))
        if len(self.image_size) != 2 or min(self.image_size) < 8:
            raise ValueError(f"image_size must be (height, width), each >= 8, got {self.image_size!r}")
        object.__setattr__(self, "image_size", (int(self.image_size[0]), int(self.image_size[1])))
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {self.encoder!r}")
        if min(self.feature_dim, self.channels, self.hidden_dim) < 1:
            raise ValueError("feature_dim, channels and hidden_dim must be >= 1")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ClassifierSpec:
        return cls(
            **{**values, "cameras": tuple(values["cameras"]), "image_size": tuple(values["image_size"])}
        )

    def size_text(self) -> str:
        h, w = self.image_size
        return f"{w}x{h}"


class SuccessClassifier(nn.Module):
    """images {camera: uint8 [B, H, W, 3]} -> logits [B] (success when sigmoid >= threshold)."""

    def __init__(self, spec: ClassifierSpec, resnet_weights: str | None = None) -> None:
        super().__init__()
        self.spec = spec

        def encoder() -> nn.Module:
            if spec.encoder == "conv":
                return ConvEncoder(spec.image_size, spec.feature_dim, spec.channels)
            return ResNetEncoder(spec.feature_dim, resnet_weights, spec.resnet_frozen)

        self.encoders = nn.ModuleDict({cam: encoder() for cam in spec.cameras})
        self.head = nn.Sequential(
            nn.Linear(spec.feature_dim * len(spec.cameras), spec.hidden_dim),
            nn.ReLU(),
            nn.Linear(spec.hidden_dim, 1),
        )

    def forward(self, images: Mapping[str, torch.Tensor]) -> torch.Tensor:
        feats = [self.encoders[cam](images[cam]) for cam in self.spec.cameras]
        return self.head(torch.cat(feats, dim=-1)).squeeze(-1)

    @torch.no_grad()
    def probabilities(self, images: Mapping[str, np.ndarray], batch: int = 256) -> np.ndarray:
        """P(success) of each frame: {camera: uint8 [N, H, W, 3]} -> float64 [N], in eval mode."""
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        n = len(images[self.spec.cameras[0]])
        out = []
        for start in range(0, n, batch):
            chunk = {
                c: torch.as_tensor(images[c][start : start + batch], device=device) for c in self.spec.cameras
            }
            out.append(torch.sigmoid(self(chunk)).cpu().numpy())
        self.train(was_training)
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0)

    def score(self, frame: Mapping[str, np.ndarray]) -> float:
        """P(success) of one observation's frames {camera: uint8 [H, W, 3]}."""
        return float(self.probabilities({c: np.asarray(frame[c])[None] for c in self.spec.cameras})[0])


@dataclass
class Classifier:
    """A loaded (or freshly trained) classifier: the model, its threshold and how it scored."""

    model: SuccessClassifier
    threshold: float = 0.5
    metrics: dict[str, Any] = field(default_factory=dict)
    path: str = "<in memory>"

    @property
    def spec(self) -> ClassifierSpec:
        return self.model.spec

    def debouncer(self, frames: int, threshold: float | None = None) -> Debouncer:
        """A Debouncer at `threshold`, or at the classifier's own when None."""
        return Debouncer(self.threshold if threshold is None else threshold, frames)


def _check_threshold(threshold: float, what: str) -> float:
    if not (isinstance(threshold, (int, float)) and 0.0 < threshold < 1.0):
        raise ValueError(f"{what} must be a probability in (0, 1), got {threshold!r}")
    return float(threshold)


def save_classifier(path: str | Path, classifier: Classifier) -> Path:
    """Write the classifier file atomically (a crash leaves the previous file, or none)."""
    path = Path(path)
    _check_threshold(classifier.threshold, "threshold")
    state = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "spec": asdict(classifier.spec),
        "threshold": classifier.threshold,
        "metrics": classifier.metrics,
        "model": {k: v.detach().cpu() for k, v in classifier.model.state_dict().items()},
    }
    save_checkpoint(path, state)
    return path


def load_classifier(path: str | Path, device: str = "cpu") -> Classifier:
    """The classifier in `path`, ready to score; ClassifierError saying what is wrong otherwise."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ClassifierError(
            f"reward classifier {path} not found: give reward.path the file `robot-rl reward train` wrote"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or garbled file, or one holding code
        raise ClassifierError(
            f"reward classifier {path} could not be read ({type(err).__name__}); it is corrupt or not a "
            "torch file: train it again with `robot-rl reward train`"
        ) from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ClassifierError(
            f"{path} is not a reward classifier (no '{FORMAT}' format entry): give reward.path the "
            "file `robot-rl reward train` wrote"
        )
    if state.get("format_version") != FORMAT_VERSION:
        raise ClassifierError(
            f"reward classifier {path} has format version {state.get('format_version')!r}; this "
            f"robot-rl reads version {FORMAT_VERSION}: train it again"
        )
    try:
        spec = ClassifierSpec.from_dict(state["spec"])
        model = SuccessClassifier(spec)
        model.load_state_dict(state["model"])
        threshold = _check_threshold(state["threshold"], "its threshold")
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ClassifierError(f"reward classifier {path} is damaged: {first}; train it again") from err
    model.to(device).eval()
    return Classifier(model, threshold, dict(state.get("metrics") or {}), str(path))


def check_fits(
    spec: ClassifierSpec, image_shapes: Mapping[str, tuple[int, ...]], where: str, path: str
) -> None:
    """Refuse when the classifier needs a camera `where` lacks, or sees another image size there.

    image_shapes: camera -> (H, W[, 3]) of the frames `where` (an env, a node) provides.
    """
    missing = [c for c in spec.cameras if c not in image_shapes]
    if missing:
        raise ClassifierError(
            f"reward classifier {path} watches cameras {list(spec.cameras)}, but {where} has "
            f"{sorted(image_shapes) or 'no cameras'}: missing {missing}; add them (env.cameras) or "
            "train a classifier on these cameras"
        )
    for cam in spec.cameras:
        size = tuple(int(s) for s in image_shapes[cam][:2])
        if size != spec.image_size:
            h, w = size
            raise ClassifierError(
                f"reward classifier {path} was trained on {spec.size_text()} images, but camera "
                f"{cam!r} of {where} gives {w}x{h}: set env.image_size={list(spec.image_size)} or "
                "train a classifier at this size"
            )


class Debouncer:
    """Success once `frames` consecutive scores are at or above `threshold`.

    One frame over the threshold (a glint, a hand passing) is not a success; a run of them is.
    A score that is not a number counts as below the threshold. The verdict holds while the run
    lasts and drops with the first frame below; reset() forgets the run (a new episode).
    """

    def __init__(self, threshold: float, frames: int) -> None:
        self.threshold = _check_threshold(threshold, "the success threshold")
        if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
            raise ValueError(f"debounce frames must be an integer >= 1, got {frames!r}")
        self.frames = frames
        self.run = 0  # consecutive frames at or above the threshold, up to now

    def update(self, score: float) -> bool:
        """Add the newest frame's score; whether the last `frames` were all positive."""
        positive = not math.isnan(score) and score >= self.threshold
        self.run = self.run + 1 if positive else 0
        return self.run >= self.frames

    def reset(self) -> None:
        self.run = 0
