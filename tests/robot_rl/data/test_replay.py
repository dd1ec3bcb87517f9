"""ReplayBuffer: frames stored once, n-step targets, ring wrap, validation."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from robot_rl.data.replay import ReplayBuffer

SPEC = {"state": ((1,), np.float32), "image_wrist": ((4, 4, 3), np.uint8)}


def frame(i: float) -> dict[str, np.ndarray]:
    """Observation whose state encodes the time step i, so next_obs can be checked."""
    return {"state": np.array([i], np.float32), "image_wrist": np.full((4, 4, 3), int(i) % 256, np.uint8)}


def store_episode(
    t: int, start: int = 0, terminal: bool = False, final: bool = True
) -> tuple[dict, dict | None]:
    """Store-format episode: state i at step i, reward i + 1 (so returns are easy to compute)."""
    steps = {
        "state": np.arange(start, start + t, dtype=np.float32)[:, None],
        "image_wrist": np.zeros((t, 4, 4, 3), np.uint8),
        "action": np.tile(np.arange(start, start + t, dtype=np.float32)[:, None], (1, 2)),
        "reward": np.arange(start, start + t, dtype=np.float32) + 1,
        "terminated": np.zeros(t, bool),
        "truncated": np.zeros(t, bool),
        "intervened": np.zeros(t, bool),
    }
    steps["terminated"][-1] = terminal
    return steps, (frame(start + t) if final else None)


def all_transitions(buf: ReplayBuffer) -> dict[float, tuple[float, float, float]]:
    """{obs state: (reward, next state, discount)} over every valid transition."""
    slots = np.flatnonzero(buf.has_trans)
    reward, nxt, disc = buf._n_step(slots)
    return {
        float(buf.frames["state"][s, 0]): (float(r), float(buf.frames["state"][n, 0]), float(d))
        for s, r, n, d in zip(slots, reward, nxt, disc, strict=True)
    }


def test_online_episode_and_frame_once() -> None:
    buf = ReplayBuffer(100, SPEC, action_dim=2, gamma=0.5, seed=0)
    episodes = 0
    for length in (3, 5, 1):
        buf.start_episode(frame(0))
        episodes += 1
        for i in range(length):
            buf.add(np.zeros(2), 1.0, frame(i + 1), terminated=i == length - 1, truncated=False)
    assert len(buf) == 9
    assert buf.n_frames == len(buf) + episodes  # next observations are not stored twice
    batch = buf.sample(64)
    assert batch.obs["images"]["wrist"].dtype == np.uint8
    assert batch.obs["state"].shape == (64, 1) and batch.action.shape == (64, 2)
    np.testing.assert_array_equal(batch.next_obs["state"], batch.obs["state"] + 1)
    next_pixel = batch.next_obs["images"]["wrist"][:, 0, 0, 0]
    np.testing.assert_array_equal(next_pixel, batch.next_obs["state"][:, 0])


def test_add_episode_frame_once_and_final_obs_handling() -> None:
    buf = ReplayBuffer(100, SPEC, action_dim=2, gamma=0.5)
    assert buf.add_episode(*store_episode(4)) == 4
    assert buf.add_episode(*store_episode(3, final=False)) == 2  # last step has no next obs
    assert buf.add_episode(*store_episode(3, terminal=True, final=False)) == 3  # terminal: no next needed
    assert buf.add_episode(*store_episode(1, final=False)) == 0
    assert len(buf) == 9
    assert buf.n_frames == len(buf) + 3


def test_n_step_1_values() -> None:
    buf = ReplayBuffer(100, SPEC, action_dim=2, gamma=0.5)
    buf.add_episode(*store_episode(3, terminal=True))
    got = all_transitions(buf)
    # (reward, next state, discount): discount gamma, or 0 on the terminal step
    assert got == {0.0: (1.0, 1.0, 0.5), 1.0: (2.0, 2.0, 0.5), 2.0: (3.0, 3.0, 0.0)}


def test_n_step_3_values_with_terminal_and_truncation() -> None:
    g = 0.5
    buf = ReplayBuffer(100, SPEC, action_dim=2, gamma=g, n_step=3)
    buf.add_episode(*store_episode(5, terminal=True))  # states 0..4, rewards 1..5, terminal at 4
    steps, final = store_episode(4, start=10)  # states 10..13, rewards 11..14, truncated at 12
    steps["truncated"][2] = True
    buf.add_episode(steps, final)
    got = all_transitions(buf)
    assert got[0.0] == (1 + g * 2 + g * g * 3, 3.0, g**3)
    assert got[2.0] == (3 + g * 4 + g * g * 5, 5.0, 0.0)  # terminal inside the window
    assert got[3.0] == (4 + g * 5, 5.0, 0.0)
    assert got[4.0] == (5.0, 5.0, 0.0)
    assert got[10.0] == (11 + g * 12 + g * g * 13, 13.0, g**3)  # window ends on the truncated step
    assert got[11.0] == (12 + g * 13, 13.0, g**2)  # truncation: stop and bootstrap
    assert got[12.0] == (13.0, 13.0, g)
    assert got[13.0] == (14.0, 14.0, g)  # episode end: fewer steps, bootstrap from final obs
    batch = buf.sample(32)
    assert batch.reward.dtype == np.float32 and batch.discount.dtype == np.float32


def test_n_step_in_online_episode_stops_at_newest_frame() -> None:
    buf = ReplayBuffer(100, SPEC, action_dim=2, gamma=0.5, n_step=3)
    buf.start_episode(frame(0))
    buf.add(np.zeros(2), 1.0, frame(1), False, False)
    buf.add(np.zeros(2), 2.0, frame(2), False, False)
    assert all_transitions(buf)[0.0] == (1 + 0.5 * 2, 2.0, 0.25)


def test_ring_wrap_never_samples_overwritten_frames() -> None:
    buf = ReplayBuffer(10, SPEC, action_dim=2, n_step=2, seed=1)
    for e in range(7):  # 7 episodes of 3 frames each through a 10-frame ring
        buf.add_episode(*store_episode(2, start=100 * e))
        assert buf.n_frames == min(3 * (e + 1), 10)
        # every sampled obs/next pair is consistent: next state follows obs state in the same episode
        for s, (_, nxt, _) in all_transitions(buf).items():
            assert nxt - s in (1.0, 2.0) and nxt // 100 == s // 100
    # the ring holds frames of the last 4 episodes; only those whose frames survive are sampled
    states = set(all_transitions(buf))
    assert states <= {400.0, 401.0, 500.0, 501.0, 600.0, 601.0}
    assert len(buf) == len(states)
    batch = buf.sample(500)
    assert set(batch.obs["state"][:, 0].tolist()) == states


def test_online_episode_overwritten_by_ring() -> None:
    buf = ReplayBuffer(4, SPEC, action_dim=2)
    buf.start_episode(frame(0))
    for i in range(10):  # an episode longer than the ring keeps working, old steps drop out
        buf.add(np.zeros(2), 1.0, frame(i + 1), False, False)
    assert len(buf) == 3
    assert set(all_transitions(buf)) == {7.0, 8.0, 9.0}


def test_sampling_is_uniform() -> None:
    buf = ReplayBuffer(1000, SPEC, action_dim=2, seed=0)
    for e in range(10):
        buf.add_episode(*store_episode(9, start=10 * e))
    counts = np.bincount(buf.sample(90_000).obs["state"][:, 0].astype(int), minlength=100)
    valid = counts[[10 * e + i for e in range(10) for i in range(9)]]
    assert valid.sum() == 90_000 and valid.min() > 800 and valid.max() < 1200


def test_validation() -> None:
    buf = ReplayBuffer(10, SPEC, action_dim=2)
    with pytest.raises(RuntimeError, match="start_episode"):
        buf.add(np.zeros(2), 0.0, frame(1), False, False)
    with pytest.raises(ValueError, match="missing \\['image_wrist'\\]"):
        buf.start_episode({"state": np.zeros(1, np.float32)})
    with pytest.raises(ValueError, match="image_wrist"):
        buf.start_episode({**frame(0), "image_wrist": np.zeros((4, 4, 3), np.float32)})
    with pytest.raises(ValueError, match="state"):
        buf.start_episode({**frame(0), "state": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match="state"):
        buf.start_episode({**frame(0), "state": np.zeros(1, np.complex64)})
    buf.start_episode({**frame(0), "state": np.zeros(1, np.float64)})  # precision may change
    with pytest.raises(ValueError, match="action"):
        buf.add(np.zeros(3), 0.0, frame(1), False, False)
    with pytest.raises(ValueError, match="reward"):
        steps, final = store_episode(3)
        buf.add_episode({**steps, "reward": np.zeros(2)}, final)
    with pytest.raises(ValueError, match="fit"):
        buf.add_episode(*store_episode(12))
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(10, SPEC, action_dim=2).sample(1)
    with pytest.raises(ValueError, match="neither"):
        ReplayBuffer(10, {**SPEC, "depth": ((4, 4), np.float32)}, action_dim=2)


def test_obs_spec_from_space() -> None:
    space = gym.spaces.Dict(
        {
            "state": gym.spaces.Box(-1, 1, (7,), np.float32),
            "images": gym.spaces.Dict({"wrist": gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)}),
        }
    )
    spec = ReplayBuffer.obs_spec_from_space(space)
    assert spec == {"state": ((7,), np.dtype(np.float32)), "image_wrist": ((8, 8, 3), np.dtype(np.uint8))}
    state_only = gym.spaces.Dict({"state": gym.spaces.Box(-1, 1, (3,), np.float32)})
    assert ReplayBuffer.obs_spec_from_space(state_only) == {"state": ((3,), np.dtype(np.float32))}


def test_capacity_beyond_memory_is_refused_with_advice():
    spec = {"state": ((4,), np.dtype(np.float32)), "image_wrist": ((128, 128, 3), np.dtype(np.uint8))}
    with pytest.raises(ValueError, match=r"lower replay\.capacity"):
        ReplayBuffer(10**9, spec, action_dim=4)  # ~49 TB of frames
