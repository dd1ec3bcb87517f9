"""Windows of consecutive steps: observation history and action chunk within one episode, padded
at the episode's start and end with a mask, never crossing into another episode; and chunk
transitions, each decision backed up whole."""

from __future__ import annotations

import numpy as np
import pytest

from robot_rl.data.mixer import DemoMixer
from robot_rl.data.replay import ReplayBuffer
from robot_rl.data.windows import WindowBatch, chunk_return, gather_chunks, gather_windows

SPEC = {"state": ((1,), np.float32), "image_cam": ((2, 2, 3), np.uint8)}


def episode(start: int, steps: int, terminal: bool = True) -> tuple[dict, dict]:
    """Step i of the episode has state start + i, image value start + i and action start + i."""
    values = np.arange(start, start + steps, dtype=np.float32)
    steps_ = {
        "state": values[:, None],
        "image_cam": np.broadcast_to(values.astype(np.uint8)[:, None, None, None], (steps, 2, 2, 3)).copy(),
        "action": values[:, None],
        "reward": np.zeros(steps, np.float32),
        "terminated": np.zeros(steps, bool),
        "truncated": np.zeros(steps, bool),
    }
    steps_["terminated"][-1] = terminal
    steps_["truncated"][-1] = not terminal
    final = {"state": np.array([start + steps], np.float32), "image_cam": np.zeros((2, 2, 3), np.uint8)}
    return steps_, final


def two_episodes(capacity: int = 100) -> ReplayBuffer:
    buf = ReplayBuffer(capacity, SPEC, action_dim=1, seed=0)
    buf.add_episode(*episode(0, 5))  # steps 0..4 in slots 0..4, final frame in slot 5
    buf.add_episode(*episode(100, 6, terminal=False))  # steps 100..105 in slots 6..11
    return buf


def windows_at(buf: ReplayBuffer, anchors: list[int], obs_horizon: int = 3, chunk: int = 4) -> WindowBatch:
    return gather_windows(buf, np.array(anchors), obs_horizon, chunk)


def test_a_window_in_the_middle_is_consecutive_steps():
    w = windows_at(two_episodes(), [8])  # step 102
    np.testing.assert_array_equal(w.obs["state"][0, :, 0], [100, 101, 102])
    np.testing.assert_array_equal(w.obs["images"]["cam"][0, :, 0, 0, 0], [100, 101, 102])
    np.testing.assert_array_equal(w.action[0, :, 0], [102, 103, 104, 105])
    assert w.obs_mask.all() and w.action_mask.all()


def test_the_episode_start_repeats_the_first_observation():
    w = windows_at(two_episodes(), [0, 1, 6])
    np.testing.assert_array_equal(w.obs["state"][:, :, 0], [[0, 0, 0], [0, 0, 1], [100, 100, 100]])
    np.testing.assert_array_equal(w.obs_mask, [[0, 0, 1], [0, 1, 1], [0, 0, 1]])


@pytest.mark.parametrize("anchor", [3, 10])  # a terminated and a truncated episode
def test_the_episode_end_repeats_the_last_action(anchor: int):
    w = windows_at(two_episodes(), [anchor])
    last = {3: 4, 10: 105}[anchor]
    np.testing.assert_array_equal(w.action[0, :, 0], [last - 1, last, last, last])
    np.testing.assert_array_equal(w.action_mask[0], [True, True, False, False])


def test_overwritten_frames_end_the_history():
    buf = ReplayBuffer(8, SPEC, action_dim=1, seed=0)
    buf.add_episode(*episode(0, 6))  # slots 0..6
    buf.add_episode(*episode(50, 2))  # slots 7, 0, 1: steps 0 and 1 of the first are gone
    w = windows_at(buf, [3])  # step 3: its history reached back to steps 1 and 2
    np.testing.assert_array_equal(w.obs["state"][0, :, 0], [2, 2, 3])
    np.testing.assert_array_equal(w.obs_mask[0], [False, True, True])


def test_sampled_windows_never_cross_episodes():
    buf = two_episodes()
    w = buf.sample_windows(256, obs_horizon=2, chunk=16)
    assert w.obs["state"].shape == (256, 2, 1) and w.obs["images"]["cam"].shape == (256, 2, 2, 2, 3)
    assert w.action.shape == (256, 16, 1) and len(w) == 256
    episode_of = w.action[:, :, 0] >= 100
    assert (episode_of == episode_of[:, :1]).all()
    assert ((w.obs["state"][:, :, 0] >= 100) == episode_of[:, :2]).all()
    steps = np.diff(w.action[:, :, 0], axis=1)
    np.testing.assert_array_equal(steps, w.action_mask[:, 1:].astype(np.float32))  # +1 while real, then held


def test_the_mixer_splits_windows_like_transitions():
    online = ReplayBuffer(100, SPEC, action_dim=1, seed=1)
    online.add_episode(*episode(0, 10))
    mixer = DemoMixer(online, two_episodes(), demo_ratio=0.25)
    w = mixer.sample_windows(8, obs_horizon=2, chunk=3)
    assert w.action.shape == (8, 3, 1) and w.obs_mask.shape == (8, 2) and w.action_mask.shape == (8, 3)
    batches = mixer.iterate_windows(4, 1, 2)
    assert next(batches).obs["state"].shape == (4, 1, 1)
    with pytest.raises(ValueError, match="obs_horizon and chunk must be >= 1"):
        mixer.sample_windows(4, 0, 2)


def test_the_chunk_return_against_a_hand_computation():
    rewards = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 1.0], [5.0, 7.0, 9.0]], np.float32)
    mask = np.array([[1, 1, 1], [1, 1, 1], [1, 0, 0]], bool)
    ret, discount = chunk_return(rewards, mask, np.array([False, True, False]), gamma=0.5)
    # 1 + 0.5 * 2 + 0.25 * 3 = 2.75 then bootstrap 0.5^3; terminated: no bootstrap; one tick run
    np.testing.assert_allclose(ret, [2.75, 0.25, 5.0])
    np.testing.assert_allclose(discount, [0.125, 0.0, 0.5])
    # the TD target: return + discount * V(after the chunk), with V = 10 everywhere
    np.testing.assert_allclose(ret + discount * 10.0, [2.75 + 1.25, 0.25, 5.0 + 5.0])


def decisions(rewards: list[float], actions: list[int], terminal: bool) -> tuple[dict, dict]:
    """One episode: step i has state i, the given action (equal actions in a row: one decision)."""
    steps, final = episode(0, len(actions), terminal)
    steps["action"] = np.array(actions, np.float32)[:, None]
    steps["reward"] = np.array(rewards, np.float32)
    return steps, final


def test_a_drawn_tick_stands_for_its_whole_decision():
    buf = ReplayBuffer(100, SPEC, action_dim=1, gamma=0.5, seed=0)
    # decisions [7 7 7] [3 3 3] [9] (cut by the termination), then a truncated episode [4 4] [5]
    buf.add_episode(*decisions([1, 0, 2, 0, 0, 4, 8], [7, 7, 7, 3, 3, 3, 9], terminal=True))  # slots 0..7
    buf.add_episode(*decisions([1, 1, 1], [4, 4, 5], terminal=False))  # slots 8..11
    b = gather_chunks(buf, np.array([0, 1, 2, 5, 6, 9, 10]), max_ticks=3)
    np.testing.assert_array_equal(b.obs["state"][:, 0], [0, 0, 0, 3, 6, 0, 2])  # the decision's first tick
    np.testing.assert_array_equal(b.action[:, 0], [7, 7, 7, 3, 9, 4, 5])
    np.testing.assert_allclose(b.reward, [1 + 0.25 * 2, 1 + 0.25 * 2, 1 + 0.25 * 2, 1, 8, 1.5, 1])
    np.testing.assert_allclose(b.discount, [0.125, 0.125, 0.125, 0.125, 0.0, 0.25, 0.5])
    # next: after the last tick (the next decision's first observation, or the final one)
    np.testing.assert_array_equal(b.next_obs["state"][:, 0], [3, 3, 3, 6, 7, 2, 3])


def test_a_decision_longer_than_max_ticks_is_split_and_the_mixer_draws_chunks():
    buf = ReplayBuffer(100, SPEC, action_dim=1, gamma=0.9, seed=0)
    buf.add_episode(*decisions([0, 0, 0, 0, 1], [1, 1, 1, 1, 1], terminal=True))
    b = gather_chunks(buf, np.array([0]), max_ticks=2)
    assert b.next_obs["state"][0, 0] == 2 and b.discount[0] == pytest.approx(0.81)
    mixer = DemoMixer(buf, two_episodes(), demo_ratio=0.25)
    batch = next(mixer.iterate_chunks(8, 3))
    assert batch.action.shape == (8, 1) and batch.reward.shape == (8,) and batch.discount.shape == (8,)
    with pytest.raises(ValueError, match="max_ticks must be >= 1"):
        mixer.sample_chunks(4, 0)
