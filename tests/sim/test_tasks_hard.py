"""peg_insert, stack_cube, slide_to_mark: experts, success checks on placed states, noisy demos."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import mujoco
import numpy as np
import pytest

from sim.experts import expert_for
from sim.human_style import NoisyOperator, OperatorStyle
from sim.tasks import make_sim_env
from sim.tasks._objects import OBJECT_STATE_DIM, yaw_quat
from sim.tasks.base import PROPRIO_DIM
from sim.tasks.peg_insert import PEG_HALF
from sim.tasks.stack_cube import BASE_HALF, TOP_HALF

HARD_TASKS = ("peg_insert", "stack_cube", "slide_to_mark")


def _episode(env: Any, policy: Any, seed: int) -> tuple[bool, list[np.ndarray]]:
    obs, _ = env.reset(seed=seed)
    policy.reset()
    actions = []
    while True:
        actions.append(policy(obs))
        obs, reward, terminated, truncated, info = env.step(actions[-1])
        assert reward == float(info["success"])
        if terminated or truncated:
            return bool(info["success"]), actions


@pytest.mark.parametrize(("task", "rotation"), [(t, False) for t in HARD_TASKS] + [("peg_insert", True)])
def test_expert_succeeds_on_seeded_episodes(task: str, rotation: bool) -> None:
    env = make_sim_env(task, rotation=rotation)
    expert = expert_for(task)(env)
    results = [_episode(env, expert, seed) for seed in range(10)]
    assert sum(ok for ok, _ in results) >= 9
    for _, actions in results:
        assert all(a.dtype == np.float32 and a.shape == env.action_space.shape for a in actions)
        assert np.all(np.abs(actions) <= 1.0)


@pytest.mark.parametrize(
    ("task", "goal_dim", "object_dim"),
    [("peg_insert", 3, OBJECT_STATE_DIM), ("stack_cube", 0, 2 * OBJECT_STATE_DIM), ("slide_to_mark", 2, 8)],
)
def test_state_layout(task: str, goal_dim: int, object_dim: int) -> None:
    plain, _ = make_sim_env(task).reset(seed=1)
    env = make_sim_env(task, privileged=True)
    priv, _ = env.reset(seed=1)
    assert plain["state"].shape == (PROPRIO_DIM + goal_dim,)
    assert priv["state"].shape == (PROPRIO_DIM + goal_dim + object_dim,)
    if goal_dim:
        np.testing.assert_allclose(plain["state"][PROPRIO_DIM:], env.unwrapped.goal, atol=1e-6)
    pos, _ = env.unwrapped.object_pose()
    np.testing.assert_allclose(priv["state"][PROPRIO_DIM + goal_dim :][:3], pos, atol=1e-6)


def test_resets_are_randomised_and_objects_apart() -> None:
    peg = make_sim_env("peg_insert", rotation=True)
    stack = make_sim_env("stack_cube")
    holes, gaps = [], []
    for seed in range(10):
        peg.reset(seed=seed)
        holes.append(peg.unwrapped.goal.copy())
        gaps.append(np.linalg.norm(peg.unwrapped.object_pose()[0][:2] - holes[-1][:2]))
        stack.reset(seed=seed)
        top, base = stack.unwrapped.object_pose()[0], stack.unwrapped.base_pose()[0]
        gaps.append(np.linalg.norm(top[:2] - base[:2]))
    assert np.ptp(np.array(holes), axis=0).min() > 0.02  # x, y and yaw all vary
    assert min(gaps) >= 0.09


def _place(env: Any, body: str, pos: np.ndarray, yaw: float = 0.0) -> None:
    u = env.unwrapped
    obj = getattr(u, body)
    obj.place(u.data, np.asarray(pos, float), yaw_quat(yaw))
    mujoco.mj_forward(u.model, u.data)


def test_peg_success_only_when_seated_in_the_hole() -> None:
    env = make_sim_env("peg_insert", rotation=True)
    env.reset(seed=3)
    u = env.unwrapped
    x, y, yaw = u.goal
    _place(env, "peg", [x, y, PEG_HALF[2]], yaw)
    assert u._is_success()
    _place(env, "peg", [x, y, PEG_HALF[2] + 0.02], yaw)  # above the hole
    assert not u._is_success()
    _place(env, "peg", [x, y, PEG_HALF[2] + 0.03], yaw + 0.4)  # turned: resting on the walls
    assert not u._is_success()
    _place(env, "peg", [x + 0.08, y, PEG_HALF[2]], yaw)  # on the table beside the block
    assert not u._is_success()


def _run_until_phase(task: str, env: Any, seed: int, phase: str) -> tuple[Any, Any]:
    """Run the task's expert from a reset until it decides to enter `phase` (that action is not
    sent); returns (expert, the last step's info)."""
    expert = expert_for(task)(env)
    obs, info = env.reset(seed=seed)
    expert.reset()
    while True:
        action = expert(obs)
        if expert.phase == phase:
            return expert, info
        obs, _, terminated, truncated, info = env.step(action)
        assert not (terminated or truncated)


def test_stack_success_only_when_resting_and_let_go() -> None:
    env = make_sim_env("stack_cube")
    env.reset(seed=2)
    u = env.unwrapped
    base, _ = u.base_pose()
    _place(env, "cube", [base[0], base[1], 2 * BASE_HALF + TOP_HALF])
    assert u._is_success()
    _place(env, "cube", [base[0] + 0.06, base[1], TOP_HALF])  # beside the other
    assert not u._is_success()
    _place(env, "cube", [base[0], base[1], 2 * BASE_HALF + TOP_HALF + 0.015])  # hovering over it
    assert not u._is_success()
    _, info = _run_until_phase("stack_cube", env, seed=2, phase="release")  # lowered onto it, still held
    assert u.touched_by_pad() and not info["success"]


def test_slide_success_only_on_the_mark_and_let_go() -> None:
    env = make_sim_env("slide_to_mark")
    env.reset(seed=4)
    u = env.unwrapped
    joint = u.model.joint("slider_joint")
    for travel, expected in [(u.mark_travel, True), (u.mark_travel + 0.01, False)]:
        u.data.qpos[joint.qposadr[0]] = travel
        mujoco.mj_forward(u.model, u.data)
        assert u._is_success() is expected
    _, info = _run_until_phase("slide_to_mark", env, seed=4, phase="release")  # on the mark, knob still held
    assert abs(u.travel() - u.mark_travel) < u.success_tolerance
    assert u.touched_by_pad() and not info["success"]


@pytest.mark.parametrize("task", HARD_TASKS)
def test_noisy_demos_are_reproducible_and_mostly_succeed(task: str) -> None:
    env = make_sim_env(task)

    def noisy_run(seed: int, episodes: int) -> tuple[int, list[np.ndarray]]:
        operator = NoisyOperator(expert_for(task)(env), seed=seed)
        runs = [_episode(env, operator, ep) for ep in range(episodes)]
        return sum(ok for ok, _ in runs), [a for _, acts in runs for a in acts]

    successes, actions = noisy_run(seed=5, episodes=10)
    assert successes >= 7
    _, again = noisy_run(seed=5, episodes=1)
    np.testing.assert_array_equal(np.stack(again), np.stack(actions[: len(again)]))
    _, other = noisy_run(seed=6, episodes=1)
    n = min(len(other), len(again))
    assert not np.allclose(np.stack(other[:n]), np.stack(again[:n]))
    _, clean = _episode(env, expert_for(task)(env), 0)
    assert len(actions[: len(again)]) > len(clean)  # slower than the expert


class _PointToGoal:
    """A closed-loop 'expert' on a point that moves 2.5 cm per unit of action: 0 -> 0.2 m."""

    goal = 0.2

    def __init__(self) -> None:
        self.x = 0.0

    def reset(self) -> None:
        self.x = 0.0

    def __call__(self, obs: Any) -> np.ndarray:
        return np.array([np.clip((self.goal - self.x) / 0.025, -1, 1), 1.0], np.float32)


def _drive(style: OperatorStyle, ticks: int = 30) -> np.ndarray:
    """The point's path when the operator drives it."""
    point = _PointToGoal()
    operator = NoisyOperator(point, seed=0, style=style)
    path = []
    for _ in range(ticks):
        action = operator(None)
        assert action[1] == 1.0  # the gripper passes through
        point.x += 0.025 * float(action[0])
        path.append(point.x)
    return np.array(path)


def test_noisy_operator_hesitates_overshoots_and_slows() -> None:
    quiet = {"speed": (1.0, 1.0), "noise_sigma": 0.0, "hesitate_p": 0.0, "overshoot_p": 0.0}
    smooth = _drive(OperatorStyle(**quiet))
    assert smooth.max() <= _PointToGoal.goal + 1e-9 and abs(smooth[-1] - _PointToGoal.goal) < 1e-3
    overshoot = _drive(OperatorStyle(**{**quiet, "overshoot_p": 1.0}))
    assert overshoot.max() > _PointToGoal.goal + 0.005  # pushed past the goal ...
    assert abs(overshoot[-1] - _PointToGoal.goal) < 1e-3  # ... and pulled back
    hesitant = _drive(OperatorStyle(**{**quiet, "hesitate_p": 0.5}))
    assert np.sum(np.diff(hesitant[:8]) == 0.0) >= 2  # whole ticks without motion on the way
    slow = _drive(OperatorStyle(**{**quiet, "speed": (0.5, 0.5)}))
    assert np.argmax(slow > 0.19) > np.argmax(smooth > 0.19)  # arrives later
    noisy = _drive(OperatorStyle(**{**quiet, "noise_sigma": 0.3}))
    assert not np.allclose(noisy, smooth)


@pytest.mark.parametrize(
    "bad", [{"speed": (0.0, 1.0)}, {"hesitate_p": 1.5}, {"overshoot_ticks": (0, 2)}, {"noise_theta": 0.0}]
)
def test_bad_operator_style_is_named(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad)).split("_")[0]):
        OperatorStyle(**bad)


@pytest.mark.usefixtures("needs_gl")
@pytest.mark.parametrize("task", HARD_TASKS)
def test_camera_images_have_the_asked_shape(task: str) -> None:
    env = make_sim_env(task, cameras=("wrist", "front"), image_size=(48, 64), seed=0)
    obs, *_ = env.step(np.zeros(4, np.float32))
    assert env.observation_space.contains(obs)
    for img in obs["images"].values():
        assert img.shape == (48, 64, 3) and img.dtype == np.uint8 and img.std() > 5
    env.close()


@pytest.mark.slow
@pytest.mark.timeout(900)  # three tiny runs on a shared 2-core CPU; a hang bound
def test_train_smoke_on_each_task(tmp_path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    tiny = [
        "total_env_steps=200",
        "demos.num_episodes=2",
        "demos.style=noisy",
        "agent.hidden_dims=[64,64]",
        "agent.batch_size=32",
        "learning_starts=64",
        "eval_every_steps=200",
        "eval_episodes=1",
        "final_eval_episodes=1",
        "weights_every_updates=20",
        "checkpoint_every_updates=50",
    ]
    for task in HARD_TASKS:
        run = tmp_path / task
        cmd = [sys.executable, "-m", "robot_rl.cli", "train", f"env.task={task}", f"run_dir={run}", *tiny]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=280, env=env)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        result = json.loads((run / "eval.json").read_text())
        assert result["episodes"] == 1 and result["updates"] > 0


# ---- shaping (SimConfig.shaping) ------------------------------------------------------------------


@pytest.mark.parametrize("task", HARD_TASKS)
def test_shaping_telescopes_and_leaves_success_alone(task: str) -> None:
    plain, shaped = make_sim_env(task, privileged=True), make_sim_env(task, privileged=True, shaping=True)
    expert = expert_for(task)(shaped)
    obs, _ = shaped.reset(seed=4)
    plain.reset(seed=4)
    expert.reset()
    start, rewards = shaped.unwrapped.progress(), []
    while True:
        action = expert(obs)
        obs, reward, terminated, truncated, info = shaped.step(action)
        _, plain_reward, plain_terminated, _, plain_info = plain.step(action)
        assert (terminated, info["success"]) == (plain_terminated, plain_info["success"])
        rewards.append(reward - plain_reward)  # the shaping term alone
        assert 0.0 <= shaped.unwrapped.progress() < 1.0
        if terminated or truncated:
            break
    assert info["success"]
    # progress(s_T) - progress(s_0): whatever the path, an episode's shaping is less than 1
    assert sum(rewards) == pytest.approx(shaped.unwrapped.progress() - start, abs=1e-9)
    assert shaped.unwrapped.progress() > start + 0.3  # the expert's episode made progress


def test_stack_progress_rewards_grasp_and_placement() -> None:
    env = make_sim_env("stack_cube", shaping=True)
    env.reset(seed=2)
    u = env.unwrapped
    base, _ = u.base_pose()
    _place(env, "cube", [base[0] + 0.15, base[1], TOP_HALF])  # far from its place
    far = u.progress()
    _place(env, "cube", [base[0], base[1], 2 * BASE_HALF + TOP_HALF])  # resting on the blue cube
    assert u.progress() > far + 0.3
    _run_until_phase("stack_cube", env, seed=2, phase="release")  # held on top of it
    assert u._pads.touching(u.data, u._cube_geom) == 2 and u.progress() > 0.8


def test_shaping_on_a_task_without_progress_is_refused() -> None:
    with pytest.raises(ValueError, match="no progress measure"):
        make_sim_env("pick_cube", shaping=True)
