"""`robot-rl reward collect` and `robot-rl reward train`: the files they write, what they print,
and what they refuse."""

from __future__ import annotations

import json

import numpy as np
import pytest

from robot_rl.cli import main
from robot_rl.reward.classifier import load_classifier
from robot_rl.reward.dataset import Frames, load_frames, save_frames


def _frames_file(path, n_episodes: int = 6, per_episode: int = 6):
    rng = np.random.default_rng(0)
    n = n_episodes * per_episode
    labels = np.arange(n) % 3 == 0
    front = rng.integers(0, 40, (n, 16, 16, 3), np.uint8)
    front[labels] += 200
    return save_frames(path, Frames({"front": front}, labels, np.repeat(np.arange(n_episodes), per_episode)))


def test_train_writes_the_classifier_and_its_confusion_picture(tmp_path, capsys):
    frames = _frames_file(tmp_path / "f.npz")
    out = tmp_path / "c.pt"
    main(
        [
            "reward",
            "train",
            str(frames),
            "-o",
            str(out),
            "--steps",
            "4",
            "--batch-size",
            "8",
            "--threshold",
            "0.6",
        ]
    )
    printed = capsys.readouterr().out
    classifier = load_classifier(out)
    assert classifier.spec.cameras == ("front",) and classifier.threshold == 0.6
    assert (tmp_path / "c_confusion.png").read_bytes()[:4] == b"\x89PNG"
    held_out = json.loads(printed.strip().splitlines()[-1])["held_out"]
    assert held_out["confusion"] == classifier.metrics["held_out"]["confusion"] and "reward.path=" in printed
    with pytest.raises(SystemExit, match="never overwritten"):
        main(["reward", "train", str(frames), "-o", str(out)])


def test_train_calibrates_the_threshold_unless_one_is_given(tmp_path, capsys):
    frames = _frames_file(tmp_path / "f.npz")
    out = tmp_path / "c.pt"
    quick = ["--steps", "4", "--batch-size", "8"]
    main(["reward", "train", str(frames), "-o", str(out), *quick, "--fpr-target", "0.1"])
    classifier = load_classifier(out)
    validation = classifier.metrics["validation"]
    assert 0.5 <= classifier.threshold < 1.0 and validation["false_positive_rate"] <= 0.1
    assert f"threshold {classifier.threshold:.4f}: validation" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="fpr_target in"):
        main(["reward", "train", str(frames), "-o", str(tmp_path / "d.pt"), "--fpr-target", "2"])


def test_train_names_input_it_cannot_read(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(SystemExit, match=r"bad\.npz could not be read"):
        main(["reward", "train", str(tmp_path / "bad.npz"), "-o", str(tmp_path / "c.pt")])
    assert not (tmp_path / "c.pt").exists()


def test_collect_copies_an_episode_stores_labelled_frames(tmp_path, capsys):
    from robot_rl.data.episode_store import EpisodeStore

    store = EpisodeStore(tmp_path / "s.zarr", mode="w")
    for _ in range(2):
        t = 4
        store.append_episode(
            {
                "state": np.zeros((t, 2), np.float32),
                "image_wrist": np.zeros((t, 8, 8, 3), np.uint8),
                "reward": np.array([0, 0, 0, 1], np.float32),
            },
            {"state": np.zeros(2, np.float32), "image_wrist": np.full((8, 8, 3), 9, np.uint8)},
        )
    main(["reward", "collect", "-o", str(tmp_path / "f.npz"), "--store", str(tmp_path / "s.zarr")])
    frames = load_frames(tmp_path / "f.npz")
    assert len(frames) == 8 and frames.labels.sum() == 2 and "2 success" in capsys.readouterr().out


@pytest.mark.usefixtures("needs_gl")
def test_collect_renders_labelled_sim_frames(tmp_path):
    out = tmp_path / "f.npz"
    args = ["--task", "pick_cube", "--cameras", "front", "--image-size", "16", "16", "--episodes", "3"]
    main(["reward", "collect", "-o", str(out), *args])
    frames = load_frames(out)
    assert frames.cameras == ["front"] and frames.image_size == (16, 16)
    assert len(frames) == 150 and 0 < frames.labels.sum() < 150  # the expert succeeds on the way
    assert sorted(set(frames.episodes.tolist())) == [0, 1, 2]


def test_train_with_a_classifier_that_does_not_fit_stops_with_one_line(tmp_path):
    import subprocess
    import sys

    from robot_rl.reward.classifier import Classifier, ClassifierSpec, SuccessClassifier, save_classifier

    spec = ClassifierSpec(("front",), (16, 16), feature_dim=4, channels=2, hidden_dim=4)
    path = save_classifier(tmp_path / "c.pt", Classifier(SuccessClassifier(spec)))
    run = tmp_path / "run"
    args = ["train", "reward=classifier", f"reward.path={path}", f"run_dir={run}"]  # a state-only env
    res = subprocess.run(
        [sys.executable, "-m", "robot_rl.cli", *args], capture_output=True, text=True, timeout=120
    )
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "watches cameras ['front'], but the env has no cameras" in res.stderr
    assert not run.exists()
