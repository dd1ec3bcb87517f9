"""Labelled frames: from an episode store's rewards, in frames files, split by episode."""

from __future__ import annotations

import numpy as np
import pytest

from robot_rl.data.episode_store import EpisodeStore
from robot_rl.reward.dataset import (
    Frames,
    concat,
    frames_from_store,
    load_frames,
    save_frames,
    split_by_episode,
)


def _episode(first: int, rewards: list[float], final: bool = True):
    """Steps whose frames are filled with first, first + 1, ... (the final frame: the next value)."""
    t = len(rewards)
    values = np.arange(first, first + t + 1, dtype=np.uint8)
    frames = np.broadcast_to(values[:, None, None, None], (t + 1, 8, 8, 3)).copy()
    steps = {
        "state": np.zeros((t, 2), np.float32),
        "image_front": frames[:t],
        "action": np.zeros((t, 4), np.float32),
        "reward": np.array(rewards, np.float32),
    }
    return steps, ({"state": np.zeros(2, np.float32), "image_front": frames[t]} if final else None)


def test_a_reward_labels_the_frame_after_its_step(tmp_path):
    store = EpisodeStore(tmp_path / "s.zarr", mode="w")
    store.append_episode(*_episode(10, [0, 0, 1]))  # success on the last step: its final frame
    store.append_episode(*_episode(50, [0, 1, 0, 0], final=False))  # no final frame: 3 labelled
    store.append_episode(*_episode(90, [1]), rerecorded=True)  # skipped
    frames = frames_from_store(tmp_path / "s.zarr")
    assert frames.cameras == ["front"] and frames.image_size == (8, 8)
    assert frames.images["front"][:, 0, 0, 0].tolist() == [11, 12, 13, 51, 52, 53]
    assert frames.labels.tolist() == [False, False, True, False, True, False]
    assert frames.episodes.tolist() == [0, 0, 0, 1, 1, 1]


def test_a_store_without_the_camera_asked_for_is_named(tmp_path):
    EpisodeStore(tmp_path / "s.zarr", mode="w").append_episode(*_episode(0, [0, 1]))
    with pytest.raises(ValueError, match=r"has cameras \['front'\]; frames need \['wrist'\]"):
        frames_from_store(tmp_path / "s.zarr", ["wrist"])


def _frames(n_episodes: int = 5, per_episode: int = 4, size: int = 8) -> Frames:
    rng = np.random.default_rng(0)
    n = n_episodes * per_episode
    images = {c: rng.integers(0, 256, (n, size, size, 3), np.uint8) for c in ("front", "wrist")}
    return Frames(images, np.arange(n) % 2 == 0, np.repeat(np.arange(n_episodes), per_episode))


def test_frames_files_round_trip(tmp_path):
    frames = _frames()
    path = save_frames(tmp_path / "f.npz", frames)
    back = load_frames(path)
    assert back.cameras == frames.cameras
    for cam in frames.cameras:
        np.testing.assert_array_equal(back.images[cam], frames.images[cam])
    np.testing.assert_array_equal(back.labels, frames.labels)
    np.testing.assert_array_equal(back.episodes, frames.episodes)
    assert [p.name for p in tmp_path.iterdir()] == ["f.npz"]


@pytest.mark.parametrize(("content", "says"), [(b"garbage", "could not be read"), (None, "no frames at")])
def test_a_bad_frames_file_is_named(tmp_path, content, says):
    path = tmp_path / "f.npz"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=says):
        load_frames(path)


def test_an_npz_without_labels_is_not_a_frames_file(tmp_path):
    np.savez(tmp_path / "f.npz", image_front=np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="not a frames file"):
        load_frames(tmp_path / "f.npz")


def test_the_split_keeps_each_episode_on_one_side():
    frames = _frames(n_episodes=10)
    train, held_out = split_by_episode(frames, 0.2, seed=3)
    assert len(set(frames.episodes[held_out])) == 2
    assert not set(frames.episodes[train]) & set(frames.episodes[held_out])
    assert sorted([*train, *held_out]) == list(range(len(frames)))
    again, _ = split_by_episode(frames, 0.2, seed=3)
    np.testing.assert_array_equal(train, again)


def test_joined_frames_keep_their_episodes_apart():
    joined = concat([_frames(n_episodes=2), _frames(n_episodes=3)])
    assert len(joined) == 20 and sorted(set(joined.episodes.tolist())) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="cannot join"):
        concat([_frames(size=8), _frames(size=16)])


def test_frames_of_mixed_sizes_are_refused():
    with pytest.raises(ValueError, match="one size"):
        Frames(
            {"a": np.zeros((1, 8, 8, 3), np.uint8), "b": np.zeros((1, 16, 16, 3), np.uint8)},
            np.zeros(1, bool),
            np.zeros(1),
        )
