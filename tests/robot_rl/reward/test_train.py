"""Training the classifier: it learns a success that shows in the frames, measures itself on
episodes it never saw, and refuses frames that cannot train it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robot_rl.eval.plots import plot_confusion
from robot_rl.reward.dataset import Frames
from robot_rl.reward.train import TrainSettings, binary_metrics, train_classifier

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
    settings = TrainSettings(steps=80, batch_size=16, lr=3e-3, held_out=0.25, log_every=40)
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
