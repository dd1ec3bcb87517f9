"""Task envs: spaces, privileged state, seeding, limits, truncation, rendering."""

from __future__ import annotations

import os
import subprocess
import sys

import mujoco
import numpy as np
import pytest

from sim.assets import JOINT_LIMITS
from sim.tasks import TASKS, make_sim_env
from sim.tasks.base import PROPRIO_DIM


@pytest.mark.parametrize("task", sorted(TASKS))
def test_obs_is_in_the_observation_space(task: str) -> None:
    env = make_sim_env(task, privileged=True)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert set(obs) == {"state"}
    assert info["success"] is False and isinstance(info["t_obs"], float)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs)
    assert reward == 0.0 and not terminated and not truncated and info["success"] is False


@pytest.mark.parametrize(
    ("task", "goal_dim", "object_dim"), [("pick_cube", 0, 10), ("reach", 3, 0), ("push", 2, 10)]
)
def test_privileged_flag_adds_object_pose_but_goal_is_always_there(
    task: str, goal_dim: int, object_dim: int
) -> None:
    plain, _ = make_sim_env(task).reset(seed=3)
    priv_env = make_sim_env(task, privileged=True)
    priv, _ = priv_env.reset(seed=3)
    assert plain["state"].shape == (PROPRIO_DIM + goal_dim,)
    assert priv["state"].shape == (PROPRIO_DIM + goal_dim + object_dim,)
    np.testing.assert_allclose(priv["state"][: plain["state"].shape[0]], plain["state"])
    if object_dim:
        pos, _ = priv_env.unwrapped.object_pose()
        np.testing.assert_allclose(priv["state"][-object_dim:][:3], pos, atol=1e-6)
    if goal_dim:
        np.testing.assert_allclose(
            plain["state"][PROPRIO_DIM:], priv_env.unwrapped.goal[:goal_dim], atol=1e-6
        )


def test_same_seed_same_reset_and_different_seed_differs() -> None:
    env = make_sim_env("pick_cube", privileged=True)
    a, _ = env.reset(seed=7)
    b, _ = env.reset(seed=7)
    c, _ = env.reset(seed=8)
    np.testing.assert_array_equal(a["state"], b["state"])
    assert not np.allclose(a["state"][-10:-7], c["state"][-10:-7])  # cube position moved


def test_joint_limits_hold_under_random_actions() -> None:
    env = make_sim_env("pick_cube", rotation=True, seed=1)
    rng = np.random.default_rng(0)
    low, high = np.array(JOINT_LIMITS).T
    for _ in range(60):
        obs, *_ = env.step(rng.uniform(-1, 1, 7).astype(np.float32))
        q = obs["state"][8:15]
        assert np.all(q >= low - 0.01) and np.all(q <= high + 0.01)


def test_ee_stays_in_the_workspace_box() -> None:
    env = make_sim_env("reach", seed=0)
    u = env.unwrapped
    for _ in range(30):
        env.step(np.array([1.0, 1.0, -1.0, -1.0], np.float32))
    assert np.all(u.ctrl.target_pos <= u.workspace_high) and np.all(u.ctrl.target_pos >= u.workspace_low)
    np.testing.assert_allclose(u.ee_position()[1:], [u.workspace_high[1], u.workspace_low[2]], atol=0.01)


def test_truncates_at_max_episode_steps() -> None:
    env = make_sim_env("pick_cube", max_episode_steps=5, seed=0)
    flags = [env.step(np.zeros(4, np.float32))[3] for _ in range(5)]
    assert flags == [False, False, False, False, True]


def test_bad_arguments_fail_clearly() -> None:
    with pytest.raises(ValueError, match="unknown sim task"):
        make_sim_env("juggle")
    with pytest.raises(ValueError, match="unknown camera"):
        make_sim_env("reach", cameras=("ceiling",))
    env = make_sim_env("reach", seed=0)
    with pytest.raises(ValueError, match="action shape"):
        env.step(np.zeros(7, np.float32))


def test_no_renderer_is_created_without_cameras(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_gl(*args: object, **kwargs: object) -> None:
        raise AssertionError("a Renderer was created for an env without cameras")

    monkeypatch.setattr(mujoco, "Renderer", no_gl)
    env = make_sim_env("pick_cube", seed=0)
    env.step(np.zeros(4, np.float32))


def test_state_env_steps_with_gl_disabled() -> None:
    code = (
        "import numpy as np; from sim.tasks import make_sim_env;"
        "env = make_sim_env('push', seed=0); env.step(np.zeros(4, np.float32)); print('ok')"
    )
    env = {**os.environ, "MUJOCO_GL": "disable", "PYOPENGL_PLATFORM": ""}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.mark.usefixtures("needs_gl")
def test_camera_images_have_the_asked_shape_and_dtype() -> None:
    env = make_sim_env("pick_cube", cameras=("wrist", "front"), image_size=(48, 64), seed=0)
    obs, *_ = env.step(np.zeros(4, np.float32))
    assert set(obs["images"]) == {"wrist", "front"}
    for img in obs["images"].values():
        assert img.shape == (48, 64, 3) and img.dtype == np.uint8
        assert img.std() > 5  # an actual picture, not a blank buffer
    assert env.observation_space.contains(obs)
    env.close()


def test_random_policy_rarely_picks_the_cube() -> None:
    env = make_sim_env("pick_cube", privileged=True)
    rng = np.random.default_rng(0)
    successes = 0
    for ep in range(10):
        env.reset(seed=1000 + ep)
        while True:
            *_, terminated, truncated, info = env.step(rng.uniform(-1, 1, 4).astype(np.float32))
            if terminated or truncated:
                break
        successes += info["success"]
    assert successes <= 1
