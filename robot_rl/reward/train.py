"""Training the success classifier: balanced batches, random-shift augmentation, a held-out split.

Success frames are rare in most recordings, so every batch draws half its frames from the
success frames and half from the rest (with replacement); each camera's frames get DrQ's random
shift (robot_rl/nets/encoders.py) so the classifier does not learn pixel positions. A fraction of
the episodes is held out (robot_rl/reward/dataset.py's split_by_episode) and never trained on;
the metrics are measured there, at the threshold the classifier is saved with:
    accuracy, precision (of the frames called success, how many are), recall (of the success
    frames, how many are called), false-positive rate (of the failure frames, how many are
    called success: a false success ends an episode with a reward it did not earn) and the
    confusion matrix [[true negatives, false positives], [false negatives, true positives]].
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from robot_rl.nets.encoders import random_shift
from robot_rl.reward.classifier import Classifier, ClassifierSpec, SuccessClassifier
from robot_rl.reward.dataset import Frames, split_by_episode


@dataclass
class TrainSettings:
    """How `robot-rl reward train` trains (its flags of the same names)."""

    steps: int = 600  # gradient steps
    batch_size: int = 64  # half success frames, half failure frames
    lr: float = 3e-4
    weight_decay: float = 1e-4
    held_out: float = 0.2  # fraction of the episodes kept out of training, for the metrics
    shift_pad: int = 4  # random shift of up to this many pixels; 0: no augmentation
    threshold: float = 0.5  # P(success) at or above which a frame is called success
    seed: int = 0
    device: str = "cpu"
    log_every: int = 100  # steps between progress lines

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 2 or self.log_every < 1:
            raise ValueError("steps and log_every must be >= 1, batch_size >= 2")
        if not self.lr > 0 or self.weight_decay < 0 or self.shift_pad < 0:
            raise ValueError("lr must be > 0, weight_decay and shift_pad >= 0")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")


def binary_metrics(labels: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """Accuracy, precision, recall, false-positive rate and the confusion matrix of bool arrays.

    A rate whose denominator is empty (no success frames, none called success) is NaN.
    """
    labels, predicted = np.asarray(labels, bool), np.asarray(predicted, bool)
    tp = int(np.sum(labels & predicted))
    fp = int(np.sum(~labels & predicted))
    fn = int(np.sum(labels & ~predicted))
    tn = int(np.sum(~labels & ~predicted))

    def ratio(num: int, den: int) -> float:
        return num / den if den else float("nan")

    return {
        "frames": len(labels),
        "accuracy": ratio(tp + tn, len(labels)),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "false_positive_rate": ratio(fp, fp + tn),
        "confusion": [[tn, fp], [fn, tp]],
    }


def _batch(
    frames: Frames, pos: np.ndarray, neg: np.ndarray, settings: TrainSettings, rng: np.random.Generator
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    half = settings.batch_size // 2
    index = np.concatenate([rng.choice(pos, half), rng.choice(neg, settings.batch_size - half)])
    device = settings.device
    images = {}
    for cam in frames.cameras:
        batch = torch.as_tensor(frames.images[cam][index], device=device)
        images[cam] = random_shift(batch, settings.shift_pad) if settings.shift_pad else batch
    return images, torch.as_tensor(frames.labels[index], dtype=torch.float32, device=device)


def train_classifier(
    frames: Frames,
    settings: TrainSettings | None = None,
    spec_fields: dict[str, Any] | None = None,
    resnet_weights: str | None = None,
    log: Callable[[str], None] = print,
) -> Classifier:
    """Train on frames' training episodes, measure on the held-out ones; the classifier with its
    threshold and metrics ({"held_out": ..., "train": ..., "settings": ...})."""
    settings = settings or TrainSettings()
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    train_idx, test_idx = split_by_episode(frames, settings.held_out, settings.seed)
    pos, neg = train_idx[frames.labels[train_idx]], train_idx[~frames.labels[train_idx]]
    if not len(pos) or not len(neg):
        have = "success" if len(pos) else "failure"
        raise ValueError(
            f"the training episodes hold only {have} frames ({frames.summary()}): a classifier needs both; "
            "collect more episodes"
        )
    spec = ClassifierSpec(frames.cameras, frames.image_size, **(spec_fields or {}))
    model = SuccessClassifier(spec, resnet_weights).to(settings.device)
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    log(f"train: {len(train_idx)} frames ({len(pos)} success), held out: {len(test_idx)} frames")
    t0, losses = time.monotonic(), []
    model.train()
    for step in range(1, settings.steps + 1):
        images, labels = _batch(frames, pos, neg, settings, rng)
        loss = F.binary_cross_entropy_with_logits(model(images), labels)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        losses.append(loss.item())
        if step % settings.log_every == 0 or step == settings.steps:
            recent = float(np.mean(losses[-settings.log_every :]))
            log(f"train: step {step}/{settings.steps}, loss {recent:.3f}, {time.monotonic() - t0:.0f} s")
    metrics = {
        "train": evaluate(model, frames.subset(train_idx), settings.threshold),
        "held_out": evaluate(model, frames.subset(test_idx), settings.threshold),
        "held_out_episodes": np.unique(frames.episodes[test_idx]).tolist(),
        "train_s": time.monotonic() - t0,
        "settings": {k: v for k, v in vars(settings).items() if k != "device"},
    }
    return Classifier(model.cpu().eval(), settings.threshold, metrics)


def evaluate(model: SuccessClassifier, frames: Frames, threshold: float) -> dict[str, Any]:
    """binary_metrics of the model's calls at `threshold` on frames."""
    called = model.probabilities(frames.images) >= threshold
    return binary_metrics(frames.labels, called)


def metrics_text(metrics: dict[str, Any]) -> str:
    """One line of a split's metrics."""
    (tn, fp), (fn, tp) = metrics["confusion"]
    return (
        f"accuracy {metrics['accuracy']:.3f}, precision {metrics['precision']:.3f}, recall "
        f"{metrics['recall']:.3f}, false-positive rate {metrics['false_positive_rate']:.4f} "
        f"(tn {tn}, fp {fp}, fn {fn}, tp {tp})"
    )
