"""A start is checked before its run folder is made; a failed start leaves nothing behind."""

import os
import subprocess
import sys

import pytest

from robot_rl.agents.sac import SACConfig
from robot_rl.config import DemoConfig, GymEnvConfig, TrainConfig, folder_name
from robot_rl.runtime.run_folder import open_run_folder


def _cfg(run_dir, env_id="Pendulum-v1", **demos) -> TrainConfig:
    demos = demos or {"source": "none", "num_episodes": 0}
    return TrainConfig(
        env=GymEnvConfig(id=env_id), agent=SACConfig(), demos=DemoConfig(**demos), run_dir=str(run_dir)
    )


def test_a_good_start_makes_the_folder_with_its_config(tmp_path):
    folder = open_run_folder(_cfg(tmp_path / "run"))
    assert folder.made and (tmp_path / "run" / "config.yaml").exists()
    assert folder.obs_space["state"].shape == (3,)


@pytest.mark.parametrize(
    ("env_id", "demos", "says"),
    [
        ("NoSuchEnv-v0", {}, "env.id"),
        ("Pendulum-v1", {"source": "scripted", "num_episodes": 2, "policy": "nope:X"}, "demos.policy"),
        ("Pendulum-v1", {"source": "scripted", "num_episodes": 2}, "demos.policy"),
    ],
)
def test_a_start_that_cannot_work_makes_no_folder(tmp_path, env_id, demos, says):
    with pytest.raises(ValueError, match=says.replace(".", r"\.")):
        open_run_folder(_cfg(tmp_path / "run", env_id, **demos))
    assert not (tmp_path / "run").exists()


def test_a_failure_while_preparing_removes_only_a_folder_this_start_made(tmp_path):
    folder = open_run_folder(_cfg(tmp_path / "new"))
    with pytest.raises(RuntimeError), folder.discard_on_failure():
        raise RuntimeError("demos failed")
    assert not (tmp_path / "new").exists()

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("the user's")
    folder = open_run_folder(_cfg(tmp_path / "mine"))
    with pytest.raises(RuntimeError), folder.discard_on_failure():
        raise RuntimeError("demos failed")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "the user's"


def test_folder_names_from_ids_are_safe():
    assert folder_name("robot_rl/PickCube-v0") == "robot_rl-PickCube-v0"
    assert folder_name("pkg:task-v0") == "pkg-task-v0"
    assert folder_name("pick_cube") == "pick_cube"


def test_a_failed_command_leaves_no_run_folder_and_one_line(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [sys.executable, "-m", "robot_rl.cli", "train", "env=gym", "env.id=no_such_pkg:t-v0", "demos=none"],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert res.stderr.strip().count("\n") == 0 and "no_such_pkg" in res.stderr
    assert list(tmp_path.iterdir()) == []  # no runs/<date>_no_such_pkg-task-v0, no .hydra, no log


@pytest.mark.parametrize(
    ("make_file", "says"),
    [(False, r"none\.pt not found"), (True, r"watches cameras \['front'\], but the env has no cameras")],
)
def test_a_reward_classifier_that_cannot_work_makes_no_folder(tmp_path, make_file, says):
    from robot_rl.reward.classifier import Classifier, ClassifierSpec, SuccessClassifier, save_classifier
    from robot_rl.reward.wrapper import RewardConfig

    path = tmp_path / "none.pt"
    if make_file:
        spec = ClassifierSpec(("front",), (16, 16), feature_dim=4, channels=2, hidden_dim=4)
        save_classifier(path, Classifier(SuccessClassifier(spec)))
    cfg = _cfg(tmp_path / "run")
    cfg.reward = RewardConfig("classifier", str(path))
    with pytest.raises(ValueError, match=says):
        open_run_folder(cfg)
    assert not (tmp_path / "run").exists()
