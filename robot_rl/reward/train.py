"""Training the success classifier: balanced batches, random-shift augmentation, a calibrated
threshold, a held-out split.

Success frames are rare in most recordings, so every batch draws half its frames from the
success frames and half from the rest (with replacement); each camera's frames get DrQ's random
shift (robot_rl/nets/encoders.py) so the classifier does not learn pixel positions.

The episodes are split three ways (robot_rl/reward/dataset.py's split_by_episode):
    held out     a `held_out` fraction, never trained on nor looked at until the final metrics
    validation   a `validation` fraction of the rest, not trained on: the threshold is calibrated
                 there (`calibrate_threshold`) so that at most `fpr_target` of its failure frames
                 are called success, since a false success ends an episode with a reward it did
                 not earn; the threshold is saved with the classifier (a fixed `threshold`
                 needs none: the rest is all trained on)
    training     the rest
On pick_cube most false successes at a threshold of 0.5 were the frames just before the success
starts (the cube millimetres short of the lift height): `hard_negatives` of each batch's failure
half is drawn from the failure frames within `near_frames` steps of a success frame of their
episode, so the model sees the boundary often rather than once in a while. Frames of an episode
are in time order, as collect and the episode stores write them.

The metrics are measured on the held-out episodes at the saved threshold:
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

MIN_THRESHOLD = 0.5  # the lowest threshold calibration may choose (calibrate_threshold)


@dataclass
class TrainSettings:
    """How `robot-rl reward train` trains (its flags of the same names)."""

    steps: int = 600  # gradient steps
    batch_size: int = 64  # half success frames, half failure frames
    lr: float = 3e-4
    weight_decay: float = 1e-4
    held_out: float = 0.2  # fraction of the episodes kept out of training, for the metrics
    shift_pad: int = 4  # random shift of up to this many pixels; 0: no augmentation
    threshold: float | None = None  # P(success) of a positive frame; None: calibrated to fpr_target
    fpr_target: float = 0.005  # false-positive rate the calibrated threshold allows on validation
    validation: float = 0.2  # fraction of the not held-out episodes the threshold is calibrated on
    hard_negatives: float = 0.25  # of the failure half of a batch, drawn from near-success frames
    near_frames: int = 2  # a failure frame this many steps or fewer from a success is near-success
    seed: int = 0
    device: str = "cpu"
    log_every: int = 100  # steps between progress lines

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 2 or self.log_every < 1:
            raise ValueError("steps and log_every must be >= 1, batch_size >= 2")
        if not self.lr > 0 or self.weight_decay < 0 or self.shift_pad < 0:
            raise ValueError("lr must be > 0, weight_decay and shift_pad >= 0")
        if self.threshold is not None and not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1) (or None: calibrated), got {self.threshold}")
        if self.threshold is None and not (0.0 <= self.fpr_target < 1.0 and 0.0 < self.validation < 1.0):
            raise ValueError(
                f"a calibrated threshold needs fpr_target in [0, 1) and validation in (0, 1), got "
                f"{self.fpr_target} and {self.validation}; or give a fixed threshold"
            )
        if not 0.0 <= self.hard_negatives <= 1.0 or self.near_frames < 1:
            raise ValueError("hard_negatives must be in [0, 1] and near_frames >= 1")


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


def calibrate_threshold(failure_scores: np.ndarray, fpr_target: float) -> float:
    """The lowest threshold that calls at most `fpr_target` of these failure frames success.

    failure_scores: P(success) of validation failure frames. The threshold sits just above the
    (k+1)-th highest score, k = floor(fpr_target * count), so the k highest are the most it calls.
    It is never below MIN_THRESHOLD (a frame likelier failure than success is not a success, and
    few validation frames say little about the low scores) and stays under 1: a target that only a
    threshold of 1 would meet is missed, and the validation metrics show by how much.
    """
    scores = np.sort(np.asarray(failure_scores, np.float64))[::-1]
    allowed = int(np.floor(fpr_target * len(scores) + 1e-9))
    if allowed >= len(scores):
        return MIN_THRESHOLD
    above = float(np.nextafter(scores[allowed], np.inf))
    return float(min(max(MIN_THRESHOLD, above), np.nextafter(1.0, 0.0)))


def near_success(frames: Frames, within: int) -> np.ndarray:
    """bool [N]: the failure frames at most `within` steps from a success frame of their episode."""
    near = np.zeros(len(frames), bool)
    for ep in np.unique(frames.episodes):
        idx = np.flatnonzero(frames.episodes == ep)
        labels = frames.labels[idx]
        success_at = np.flatnonzero(labels)
        if success_at.size:
            steps_away = np.abs(np.arange(len(idx))[:, None] - success_at[None, :]).min(axis=1)
            near[idx] = ~labels & (steps_away <= within)
    return near


@dataclass
class _Pools:
    """Training frame indices a batch draws from: success, failure, near-success failure."""

    pos: np.ndarray
    neg: np.ndarray
    hard: np.ndarray


def _batch(
    frames: Frames, pools: _Pools, settings: TrainSettings, rng: np.random.Generator
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    half = settings.batch_size // 2
    n_neg = settings.batch_size - half
    n_hard = round(settings.hard_negatives * n_neg) if len(pools.hard) else 0
    index = np.concatenate(
        [rng.choice(pools.pos, half), rng.choice(pools.hard, n_hard), rng.choice(pools.neg, n_neg - n_hard)]
    )
    device = settings.device
    images = {}
    for cam in frames.cameras:
        batch = torch.as_tensor(frames.images[cam][index], device=device)
        images[cam] = random_shift(batch, settings.shift_pad) if settings.shift_pad else batch
    return images, torch.as_tensor(frames.labels[index], dtype=torch.float32, device=device)


def _splits(frames: Frames, settings: TrainSettings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame indices (training, validation, held out); validation is empty for a fixed threshold."""
    rest, test_idx = split_by_episode(frames, settings.held_out, settings.seed)
    if settings.threshold is not None:
        return rest, rest[:0], test_idx
    if len(np.unique(frames.episodes[rest])) < 2:
        raise ValueError(
            f"calibrating the threshold needs at least 2 episodes besides the held-out ones, got "
            f"{frames.summary()}: collect more episodes, or give a fixed threshold (--threshold)"
        )
    fit, val = split_by_episode(frames.subset(rest), settings.validation, settings.seed)
    return rest[fit], rest[val], test_idx


def _pools(frames: Frames, train_idx: np.ndarray, settings: TrainSettings) -> _Pools:
    labels = frames.labels[train_idx]
    if labels.all() or not labels.any():
        have = "success" if labels.any() else "failure"
        raise ValueError(
            f"the training episodes hold only {have} frames ({frames.summary()}): a classifier needs both; "
            "collect more episodes"
        )
    hard = near_success(frames.subset(train_idx), settings.near_frames)
    return _Pools(train_idx[labels], train_idx[~labels], train_idx[hard])


def train_classifier(
    frames: Frames,
    settings: TrainSettings | None = None,
    spec_fields: dict[str, Any] | None = None,
    resnet_weights: str | None = None,
    log: Callable[[str], None] = print,
) -> Classifier:
    """Train on frames' training episodes, calibrate the threshold on the validation ones, measure
    on the held-out ones; the classifier with its threshold and metrics ({"held_out": ...,
    "train": ..., "validation": ... (calibrated only), "settings": ...})."""
    settings = settings or TrainSettings()
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    train_idx, val_idx, test_idx = _splits(frames, settings)
    pools = _pools(frames, train_idx, settings)
    spec = ClassifierSpec(frames.cameras, frames.image_size, **(spec_fields or {}))
    model = SuccessClassifier(spec, resnet_weights).to(settings.device)
    log(
        f"train: {len(train_idx)} frames ({len(pools.pos)} success, {len(pools.hard)} near-success "
        f"failure), validation: {len(val_idx)} frames, held out: {len(test_idx)} frames"
    )
    t0 = time.monotonic()
    _fit(model, frames, pools, settings, rng, log)
    metrics: dict[str, Any] = {}
    threshold = settings.threshold
    if threshold is None:
        val = frames.subset(val_idx)
        threshold = calibrate_threshold(model.probabilities(val.images)[~val.labels], settings.fpr_target)
        metrics["validation"] = evaluate(model, val, threshold)
        metrics["validation_episodes"] = np.unique(val.episodes).tolist()
        log(f"threshold {threshold:.4f}: validation {metrics_text(metrics['validation'])}")
    metrics |= {
        "train": evaluate(model, frames.subset(train_idx), threshold),
        "held_out": evaluate(model, frames.subset(test_idx), threshold),
        "held_out_episodes": np.unique(frames.episodes[test_idx]).tolist(),
        "train_s": time.monotonic() - t0,
        "settings": {k: v for k, v in vars(settings).items() if k != "device"},
    }
    return Classifier(model.cpu().eval(), threshold, metrics)


def _fit(
    model: SuccessClassifier,
    frames: Frames,
    pools: _Pools,
    settings: TrainSettings,
    rng: np.random.Generator,
    log: Callable[[str], None],
) -> None:
    """settings.steps of AdamW on balanced, augmented batches."""
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    t0, losses = time.monotonic(), []
    model.train()
    for step in range(1, settings.steps + 1):
        images, labels = _batch(frames, pools, settings, rng)
        loss = F.binary_cross_entropy_with_logits(model(images), labels)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        losses.append(loss.item())
        if step % settings.log_every == 0 or step == settings.steps:
            recent = float(np.mean(losses[-settings.log_every :]))
            log(f"train: step {step}/{settings.steps}, loss {recent:.3f}, {time.monotonic() - t0:.0f} s")


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
