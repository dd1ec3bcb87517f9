"""Tests of robot_rl.agents.grasp_critic and SAC's agent.gripper=discrete."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator

import gymnasium as gym
import numpy as np
import pytest
import torch

from robot_rl.agents.grasp_critic import (
    CLOSE,
    GRIPPER_WIDTH_INDEX,
    OPEN,
    STAY,
    grasp_loss,
    grasp_td_target,
    gripper_commands,
    gripper_labels,
)
from robot_rl.agents.sac import SACAgent, SACConfig
from robot_rl.transition import Batch

D, A = 12, 4  # an arm task's state (gripper width at index 7) and (dx, dy, dz, gripper)
OPEN_W, CLOSED_W = 0.08, 0.0


def spaces(d: int = D, a: int = A) -> tuple[gym.spaces.Dict, gym.spaces.Box]:
    state = gym.spaces.Box(-np.inf, np.inf, (d,), np.float32)
    return gym.spaces.Dict({"state": state}), gym.spaces.Box(-1, 1, (a,), np.float32)


def make_batch(b: int, seed: int) -> Batch:
    rng = np.random.default_rng(seed)

    def obs() -> dict:
        state = rng.standard_normal((b, D)).astype(np.float32)
        state[:, GRIPPER_WIDTH_INDEX] = rng.choice([OPEN_W, CLOSED_W], b)
        return {"state": state}

    action = rng.uniform(-1, 1, (b, A)).astype(np.float32)
    action[:, -1] = rng.choice([-1.0, 1.0], b)
    reward = rng.standard_normal(b).astype(np.float32)
    return Batch(obs(), action, reward, obs(), np.full(b, 0.99, np.float32))


def batches(seed: int = 0) -> Iterator[Batch]:
    while True:
        yield make_batch(32, seed)
        seed += 1


def cfg(**kw) -> SACConfig:
    return SACConfig(**{"hidden_dims": [32, 32], "batch_size": 32, "utd": 2, **kw})


def obs_with_width(width: float, seed: int = 0) -> dict:
    state = np.random.default_rng(seed).standard_normal(D).astype(np.float32)
    state[GRIPPER_WIDTH_INDEX] = width
    return {"state": state}


@pytest.mark.parametrize(
    "kw",
    [
        {"gripper": "binary"},
        {"grasp_penalty": -0.1},
        {"grasp_lr": 0.0},
        {"grasp_num_critics": 0},
        {"grasp_epsilon": 1.5},
        {"grasp_open_width_m": 0.0},
    ],
)
def test_config_rejects_bad_grasp_fields(kw) -> None:
    with pytest.raises(ValueError, match=next(iter(kw))):
        SACConfig(**kw)


def test_discrete_needs_an_arm_task() -> None:
    with pytest.raises(ValueError, match="gripper=continuous"):
        SACAgent(*spaces(d=6), cfg(gripper="discrete"), seed=0)


def test_default_path_unchanged_and_discrete_actor_drops_the_gripper() -> None:
    """gripper=continuous (the default) gives the same parameters after seeded updates as a config
    that never names the grasp fields; discrete's actor and critic see the arm's A-1 entries."""
    runs = []
    for c in (
        SACConfig(hidden_dims=[32, 32], batch_size=32, utd=2),
        cfg(gripper="continuous", grasp_penalty=0.5),
    ):
        agent = SACAgent(*spaces(), c, seed=3)
        it = batches()
        for _ in range(3):
            agent.update(it)
        runs.append(agent)
    base, other = runs
    assert base.grasp is None and other.grasp is None
    for name in ("actor", "critic", "encoder", "target_critic"):
        for (k, v), (_, w) in zip(
            getattr(base, name).state_dict().items(), getattr(other, name).state_dict().items(), strict=True
        ):
            assert torch.equal(v, w), f"{name}.{k}"
    assert base.actor.mean_log_std(torch.zeros(1, base.encoder.out_dim))[0].shape[-1] == A

    discrete = SACAgent(*spaces(), cfg(gripper="discrete"), seed=3)
    assert discrete.actor.mean_log_std(torch.zeros(1, discrete.encoder.out_dim))[0].shape[-1] == A - 1
    assert discrete.arm_dim == A - 1 and discrete.target_entropy == -(A - 1) / 2


def test_labels_and_commands_are_inverse() -> None:
    command = torch.tensor([-1.0, -1.0, 1.0, 1.0, 0.3, -0.2])
    is_open = torch.tensor([True, False, True, False, True, False])
    labels = gripper_labels(command, is_open)
    # open while open: stay; open while closed: open; close while open: close; close while closed: stay;
    # an intermediate command counts by its side.
    assert labels.tolist() == [STAY, OPEN, CLOSE, STAY, CLOSE, OPEN]
    choice = torch.tensor([OPEN, STAY, CLOSE, STAY])
    commands = gripper_commands(choice, torch.tensor([False, True, True, False]))
    assert commands.tolist() == [-1.0, -1.0, 1.0, 1.0]
    for c in (-1.0, 1.0):
        for o in (True, False):
            label = gripper_labels(torch.tensor([c]), torch.tensor([o]))
            assert gripper_commands(label, torch.tensor([o])).item() == c


def test_toggle_penalty_exactly_when_the_class_changes() -> None:
    reward, discount = torch.tensor([1.0, 1.0, 1.0]), torch.tensor([0.5, 0.5, 0.0])
    labels = gripper_labels(torch.tensor([1.0, 1.0, -1.0]), torch.tensor([False, True, False]))
    assert labels.tolist() == [STAY, CLOSE, OPEN]
    next_q_online = torch.tensor(
        [[[0.0, 2.0, 1.0]] * 3, [[0.0, 0.0, 5.0]] * 3]
    )  # [K=2, B, G]: mean argmax CLOSE
    next_q_target = torch.tensor([[[9.0, 9.0, 4.0]] * 3, [[9.0, 9.0, 3.0]] * 3])  # min at CLOSE: 3
    y = grasp_td_target(reward, discount, labels != STAY, 0.1, next_q_online, next_q_target)
    torch.testing.assert_close(y, torch.tensor([1.0 + 0.5 * 3.0, 0.9 + 0.5 * 3.0, 0.9]))


def test_grasp_loss_by_hand_and_decreases_on_a_fixed_batch() -> None:
    q = torch.tensor([[[1.0, 2.0, 3.0]], [[0.0, 1.0, 1.0]]])  # [K=2, B=1, G]
    loss, info = grasp_loss(q, torch.tensor([CLOSE]), torch.tensor([2.0]))
    assert loss.item() == pytest.approx((1.0 + 1.0) / 2) and info["grasp_q_mean"].item() == pytest.approx(2.0)

    agent = SACAgent(*spaces(), cfg(gripper="discrete", grasp_lr=1e-3), seed=0)
    fixed = make_batch(64, 7)
    losses = [agent.update(iter([fixed] * 2))["grasp_loss"] for _ in range(60)]
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


def test_act_returns_full_actions_with_a_discrete_gripper() -> None:
    agent = SACAgent(*spaces(), cfg(gripper="discrete", grasp_epsilon=0.5), seed=0)
    agent.reset()
    seen = set()
    for i in range(40):
        width = OPEN_W if i % 2 else CLOSED_W
        for deterministic in (False, True):
            action = agent.act(obs_with_width(width, i), deterministic=deterministic)
            assert action.shape == (A,) and action.dtype == np.float32
            assert np.all(np.abs(action) <= 1.0)
            assert action[-1] in (-1.0, 1.0)  # open, close, or stay = the measured state's command
            seen.add((width, float(action[-1])))
    assert len(seen) == 4  # exploration reaches both commands from both gripper states


def test_policy_state_loads_weights_only_and_reproduces_act() -> None:
    agent = SACAgent(*spaces(), cfg(gripper="discrete"), seed=0)
    agent.update(batches())
    buf = io.BytesIO()
    torch.save(agent.policy_state(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    assert any(k.startswith("grasp.") for k in state)
    fresh = SACAgent(*spaces(), cfg(gripper="discrete"), seed=1)
    fresh.load_policy_state(state)
    for i, width in enumerate((OPEN_W, CLOSED_W, OPEN_W)):
        obs = obs_with_width(width, i)
        np.testing.assert_array_equal(agent.act(obs, deterministic=True), fresh.act(obs, deterministic=True))


def test_state_dict_round_trip_keeps_the_grasp_critic() -> None:
    agent = SACAgent(*spaces(), cfg(gripper="discrete"), seed=0)
    agent.update(batches())
    other = SACAgent(*spaces(), cfg(gripper="discrete"), seed=1)
    other.load_state_dict(agent.state_dict())
    assert other.grasp is not None and agent.grasp is not None
    for v, w in zip(agent.grasp.target.parameters(), other.grasp.target.parameters(), strict=True):
        assert torch.equal(v, w)


@pytest.mark.slow
def test_train_smoke_with_a_discrete_gripper(tmp_path) -> None:
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    args = [
        "train", "agent.gripper=discrete", "total_env_steps=300", f"run_dir={run}", "demos.num_episodes=2",
        "agent.hidden_dims=[64,64]", "agent.batch_size=32", "agent.utd=2", "learning_starts=64",
        "eval_every_steps=200", "eval_episodes=1", "final_eval_episodes=2", "weights_every_updates=20",
        "checkpoint_every_updates=50",
    ]  # fmt: skip
    res = subprocess.run(
        [sys.executable, "-m", "robot_rl.cli", *args], capture_output=True, text=True, timeout=300, env=env
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "final eval: success" in res.stdout
    weights = torch.load(run / "weights" / "policy.pt", weights_only=True)
    assert any(k.startswith("grasp.") for k in weights["policy"])  # the actors ran the grasp critic
