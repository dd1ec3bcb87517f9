"""Training the classifier: it learns a success that shows in the frames, measures itself on
episodes it never saw, and refuses frames that cannot train it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robot_rl.eval.plots import plot_confusion
from robot_rl.reward.dataset import Frames
from robot_rl.reward.train import (
    MIN_THRESHOLD,
    TrainSettings,
    binary_metrics,
    calibrate_threshold,
    near_success,
    train_classifier,
)

SPEC = {"feature_dim": 8, "channels": 8, "hidden_dim": 16}


def lit_square_frames(n_episodes: int = 12, per_episode: int = 10, seed: int = 0) -> Frames:
    """Noisy dark frames; in a success frame the front camera also sees a bright square (at a
    random place), and the wrist camera sees nothing telling. One success frame in four."""
    rng = np.random.default_rng(seed)
    n = n_episodes * per_episode
    labels = rng.random(n) < 0.25
    front = rng.integers(0, 60, (n, 16, 16, 3), np.uint8)
    for i in np.flatnonzero(labels):
        r, c = rng.integers(0, 10, 2)
        front[i, r : r + 6, c : c + 6] = 230
    wrist = rng.integers(0, 60, (n, 16, 16, 3), np.uint8)
    return Frames({"front": front, "wrist": wrist}, labels, np.repeat(np.arange(n_episodes), per_episode))


def test_a_tiny_classifier_learns_a_visible_success_and_reports_held_out_metrics():
    frames = lit_square_frames()
    settings = TrainSettings(steps=80, batch_size=16, lr=3e-3, held_out=0.25, threshold=0.5, log_every=40)
    lines: list[str] = []
    classifier = train_classifier(frames, settings, SPEC, log=lines.append)
    held_out = classifier.metrics["held_out"]
    assert len(classifier.metrics["held_out_episodes"]) == 3 and held_out["frames"] == 30
    assert held_out["accuracy"] >= 0.9 and held_out["false_positive_rate"] <= 0.1
    (tn, fp), (fn, tp) = held_out["confusion"]
    assert tn + fp + fn + tp == 30
    assert classifier.spec.cameras == ("front", "wrist") and classifier.spec.image_size == (16, 16)
    assert any("step 80/80" in line for line in lines)


def test_frames_without_a_success_cannot_train_a_classifier():
    frames = lit_square_frames()
    frames.labels[:] = False
    with pytest.raises(ValueError, match="only failure frames"):
        train_classifier(frames, TrainSettings(steps=1), SPEC, log=lambda _: None)


def test_metrics_of_known_calls():
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 0], bool)
    called = np.array([1, 1, 0, 1, 0, 0, 0, 0], bool)
    m = binary_metrics(labels, called)
    assert m["confusion"] == [[4, 1], [1, 2]]
    assert m["accuracy"] == 6 / 8 and m["precision"] == 2 / 3 and m["recall"] == 2 / 3
    assert m["false_positive_rate"] == 1 / 5
    assert math.isnan(binary_metrics(labels[3:], called[3:] & False)["precision"])


def test_the_confusion_picture_is_written_and_a_bad_matrix_refused(tmp_path):
    out = plot_confusion([[90, 1], [3, 20]], tmp_path / "c.png", title="held out")
    assert out.stat().st_size > 1000 and out.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="2x2"):
        plot_confusion([[1, 2, 3]], tmp_path / "bad.png")


@pytest.mark.parametrize("target", [0.0, 0.005, 0.01, 0.05, 0.2])
def test_the_calibrated_threshold_calls_at_most_the_target_share_of_failures_success(target):
    # a stand-in validation set: 1000 failure scores, mostly low, with a tail of confident mistakes
    rng = np.random.default_rng(1)
    scores = np.concatenate([rng.beta(1, 8, 950), rng.uniform(0.5, 1.0, 50)])
    threshold = calibrate_threshold(scores, target)
    assert MIN_THRESHOLD <= threshold < 1.0
    assert np.mean(scores >= threshold) <= target
    # the lowest such threshold: the next failure score below it would be one too many
    below = scores[scores < threshold].max()
    assert threshold == MIN_THRESHOLD or np.mean(scores >= below) > target


def test_calibration_never_goes_under_the_floor_nor_reaches_one():
    assert calibrate_threshold(np.full(100, 0.1), 0.005) == MIN_THRESHOLD  # every failure scored low
    assert calibrate_threshold(np.zeros(0), 0.005) == MIN_THRESHOLD  # nothing to calibrate on
    assert 0.99 < calibrate_threshold(np.ones(100), 0.005) < 1.0  # a target no threshold meets


def test_near_success_marks_the_failure_frames_next_to_a_success_of_their_episode():
    labels = np.array([0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1], bool)
    episodes = np.array([0] * 8 + [1] * 5 + [2])  # episode 1 never succeeds
    frames = Frames({"front": np.zeros((14, 8, 8, 3), np.uint8)}, labels, episodes)
    near = near_success(frames, within=2)
    assert np.flatnonzero(near).tolist() == [1, 2, 5, 6]
    assert not near[labels].any()


def test_a_calibrated_classifier_keeps_its_validation_false_positives_under_the_target():
    frames = lit_square_frames(n_episodes=16)
    settings = TrainSettings(steps=80, batch_size=16, lr=3e-3, held_out=0.25, fpr_target=0.05, log_every=40)
    lines: list[str] = []
    classifier = train_classifier(frames, settings, SPEC, log=lines.append)
    m = classifier.metrics
    validation, held_out = set(m["validation_episodes"]), set(m["held_out_episodes"])
    assert len(held_out) == 4 and len(validation) == 2 and not validation & held_out
    val = frames.subset(np.flatnonzero(np.isin(frames.episodes, sorted(validation))))
    scores = classifier.model.probabilities(val.images)
    assert classifier.threshold == calibrate_threshold(scores[~val.labels], 0.05)
    assert m["validation"]["false_positive_rate"] <= 0.05
    assert (
        m["validation"]["confusion"]
        == binary_metrics(val.labels, scores >= classifier.threshold)["confusion"]
    )
    assert any(f"threshold {classifier.threshold:.4f}: validation" in line for line in lines)


def test_a_calibrated_threshold_needs_episodes_to_calibrate_on():
    frames = lit_square_frames(n_episodes=2)
    with pytest.raises(ValueError, match="at least 2 episodes besides the held-out"):
        train_classifier(frames, TrainSettings(steps=1), SPEC, log=lambda _: None)
    with pytest.raises(ValueError, match="fixed threshold"):
        TrainSettings(fpr_target=1.5)
