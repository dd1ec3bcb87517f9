"""The success classifier: its debounce and threshold, its file, and the refusals of a file that
is missing, corrupt, foreign, or does not fit the cameras it is asked to watch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from robot_rl.reward.classifier import (
    Classifier,
    ClassifierError,
    ClassifierSpec,
    Debouncer,
    SuccessClassifier,
    check_fits,
    load_classifier,
    save_classifier,
)


def verdicts(debouncer: Debouncer, scores: list[float]) -> str:
    return "".join("S" if debouncer.update(s) else "." for s in scores)


def test_success_needs_debounce_frames_in_a_row_at_or_above_the_threshold():
    d = Debouncer(threshold=0.7, frames=3)
    # a glint, two in a row, three (success, held while the run lasts), a drop, three at the threshold
    scores = [0.1, 0.9, 0.2, 0.8, 0.95, 0.71, 0.99, 0.8, 0.3, 0.7, 0.7, 0.7]
    assert verdicts(d, scores) == ".....SSS...S"


def test_one_frame_debounce_is_the_bare_threshold():
    assert verdicts(Debouncer(0.5, 1), [0.49, 0.5, 0.51, 0.2]) == ".SS."


def test_a_score_that_is_not_a_number_breaks_the_run():
    d = Debouncer(0.5, 2)
    assert verdicts(d, [0.9, math.nan, 0.9, 0.9]) == "...S"


def test_reset_forgets_the_run():
    d = Debouncer(0.5, 2)
    assert verdicts(d, [0.9]) == "."
    d.reset()
    assert verdicts(d, [0.9, 0.9]) == ".S"


@pytest.mark.parametrize(
    ("threshold", "frames", "says"),
    [(0.0, 3, "threshold"), (1.0, 3, "threshold"), (0.5, 0, "debounce"), (0.5, 2.0, "debounce")],
)
def test_bad_debounce_settings_are_refused(threshold, frames, says):
    with pytest.raises(ValueError, match=says):
        Debouncer(threshold, frames)


def _classifier(cameras=("wrist", "front"), size=(16, 24), threshold=0.8) -> Classifier:
    torch.manual_seed(0)
    spec = ClassifierSpec(cameras, size, feature_dim=8, channels=4, hidden_dim=8)
    return Classifier(SuccessClassifier(spec), threshold, {"held_out": {"accuracy": 0.97}})


def test_the_file_round_trips_model_threshold_and_metrics(tmp_path):
    original = _classifier()
    path = save_classifier(tmp_path / "c.pt", original)
    loaded = load_classifier(path)
    assert loaded.spec == original.spec and loaded.spec.cameras == ("front", "wrist")
    assert loaded.threshold == 0.8 and loaded.metrics == {"held_out": {"accuracy": 0.97}}
    frames = {
        c: np.random.default_rng(1).integers(0, 256, (5, 16, 24, 3), np.uint8) for c in ("front", "wrist")
    }
    np.testing.assert_allclose(
        loaded.model.probabilities(frames), original.model.probabilities(frames), rtol=1e-6
    )
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ClassifierError, match=r"nope\.pt not found"):
        load_classifier(tmp_path / "nope.pt")


def test_a_truncated_file_is_called_corrupt(tmp_path):
    path = save_classifier(tmp_path / "c.pt", _classifier())
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ClassifierError, match="corrupt"):
        load_classifier(path)


def test_a_file_that_is_not_a_classifier_is_refused(tmp_path):
    torch.save({"policy": {}}, tmp_path / "weights.pt")
    with pytest.raises(ClassifierError, match="not a reward classifier"):
        load_classifier(tmp_path / "weights.pt")


def test_a_classifier_whose_weights_do_not_fit_its_spec_is_damaged(tmp_path):
    path = save_classifier(tmp_path / "c.pt", _classifier())
    state = torch.load(path, weights_only=True)
    state["spec"]["feature_dim"] = 16
    torch.save(state, path)
    with pytest.raises(ClassifierError, match="damaged"):
        load_classifier(path)


def test_other_cameras_are_named():
    spec = _classifier().spec
    with pytest.raises(ClassifierError, match=r"missing \['wrist'\]") as err:
        check_fits(spec, {"front": (16, 24, 3)}, "the env", "c.pt")
    assert "c.pt" in str(err.value)
    with pytest.raises(ClassifierError, match="no cameras"):
        check_fits(spec, {}, "the env", "c.pt")


def test_another_image_size_is_named():
    spec = _classifier().spec
    with pytest.raises(ClassifierError, match=r"24x16 images, but camera 'front' of the env gives 64x64"):
        check_fits(spec, {"front": (64, 64, 3), "wrist": (16, 24, 3)}, "the env", "c.pt")


def test_a_camera_the_classifier_does_not_watch_is_fine():
    spec = _classifier(cameras=("front",)).spec
    check_fits(spec, {"front": (16, 24, 3), "wrist": (64, 64, 3)}, "the env", "c.pt")


def test_a_resnet18_classifier_round_trips_with_its_trunk_frozen(tmp_path):
    torch.manual_seed(0)
    spec = ClassifierSpec(("front",), (32, 32), encoder="resnet18", feature_dim=8, hidden_dim=8)
    model = SuccessClassifier(spec)
    assert not any(p.requires_grad for p in model.encoders["front"].trunk.parameters())
    loaded = load_classifier(save_classifier(tmp_path / "r.pt", Classifier(model)))
    frames = {"front": np.random.default_rng(2).integers(0, 256, (3, 32, 32, 3), np.uint8)}
    np.testing.assert_allclose(loaded.model.probabilities(frames), model.probabilities(frames), rtol=1e-5)
