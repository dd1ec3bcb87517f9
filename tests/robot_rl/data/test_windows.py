"""Windows of consecutive steps: observation history and action chunk within one episode, padded
at the episode's start and end with a mask, never crossing into another episode."""

from __future__ import annotations

import numpy as np
import pytest

from robot_rl.data.mixer import DemoMixer
from robot_rl.data.replay import ReplayBuffer
from robot_rl.data.windows import WindowBatch, gather_windows

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
