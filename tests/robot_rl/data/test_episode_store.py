"""EpisodeStore: round trip, validation, crash recovery, diffusion_policy-format stores."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numcodecs
import numpy as np
import pytest
import zarr

from robot_rl.data.episode_store import EpisodeStore
from robot_rl.transition import STEP_KEYS


def make_episode(t: int, seed: int = 0, cams: tuple[str, ...] = ("wrist",)) -> tuple[dict, dict]:
    """(steps, final_obs) with every STEP_KEY, a 5-float state and 8x8 images per camera."""
    rng = np.random.default_rng(seed)
    steps = {
        "state": rng.normal(size=(t, 5)).astype(np.float32),
        "action": rng.uniform(-1, 1, (t, 2)).astype(np.float32),
        "policy_action": rng.uniform(-1, 1, (t, 2)).astype(np.float32),
        "reward": rng.normal(size=t).astype(np.float32),
        "terminated": np.zeros(t, bool),
        "truncated": np.zeros(t, bool),
        "intervened": rng.random(t) < 0.3,
        "policy_version": np.full(t, seed, np.int64),
        "t_obs": np.arange(t, dtype=np.float64) + seed,
    }
    steps["terminated"][-1] = True
    final = {"state": rng.normal(size=5).astype(np.float32)}
    for cam in cams:
        steps[f"image_{cam}"] = rng.integers(0, 256, (t, 8, 8, 3), dtype=np.uint8)
        final[f"image_{cam}"] = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    assert set(STEP_KEYS) <= set(steps)
    return steps, final


def assert_equal_dicts(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        assert np.asarray(a[k]).dtype == np.asarray(b[k]).dtype, k


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    store = EpisodeStore(path, "w")
    episodes = [make_episode(t, seed=i) for i, t in enumerate([3, 1, 7])]
    for i, (steps, final) in enumerate(episodes):
        store.append_episode(steps, final if i != 1 else None)
    store.attrs["env"] = {"id": "PickCube", "hz": 10}
    assert_equal_dicts(store.episode(2), episodes[2][0])  # the writing instance reads its own appends
    assert_equal_dicts(store.final_obs(2), episodes[2][1])

    reopened = EpisodeStore(path, "r")
    assert reopened.n_episodes == 3 and reopened.n_steps == 11
    np.testing.assert_array_equal(reopened.episode_ends, [3, 4, 11])
    assert reopened.episode_ends.dtype == np.int64
    assert reopened.attrs["env"] == {"id": "PickCube", "hz": 10}
    assert "image_wrist" in reopened.keys and "state" in reopened.keys
    assert reopened.final_obs(1) is None
    stored = reopened.episodes()
    for i, ((steps, final), (got_steps, got_final)) in enumerate(zip(episodes, stored, strict=True)):
        assert_equal_dicts(got_steps, steps)
        assert_equal_dicts(reopened.episode(i), steps)
        if i != 1:
            assert_equal_dicts(got_final, final)
    # a global slice crosses episode boundaries
    sl = reopened.steps(2, 5)
    np.testing.assert_array_equal(sl["state"][0], episodes[0][0]["state"][2])
    np.testing.assert_array_equal(sl["state"][2], episodes[2][0]["state"][0])
    assert reopened.episode(-1)["state"].shape == (7, 5)
    # next observations are not duplicated in data/
    assert zarr.open_group(path, mode="r")["data/state"].shape[0] == 11


def test_layout_is_zarr2_with_uint8_images(tmp_path: Path) -> None:
    store = EpisodeStore(tmp_path / "s.zarr", "w")
    store.append_episode(*make_episode(4))
    root = zarr.open_group(tmp_path / "s.zarr", mode="r", zarr_format=2)
    assert root.metadata.zarr_format == 2
    assert root["data/image_wrist"].dtype == np.uint8
    assert root["meta/episode_ends"].dtype == np.int64
    assert root["meta/final_image_wrist"].shape == (1, 8, 8, 3)
    assert (tmp_path / "s.zarr" / "data" / "state" / ".zarray").exists()


def test_modes(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        EpisodeStore(path, "r")
    with pytest.raises(ValueError, match="mode"):
        EpisodeStore(path, "x")
    EpisodeStore(path, "a").append_episode(*make_episode(2))
    assert EpisodeStore(path, "a").n_episodes == 1
    assert EpisodeStore(path, "w").n_episodes == 0
    with pytest.raises(PermissionError, match="read-only"):
        EpisodeStore(path, "r").append_episode(*make_episode(2))
    precious = tmp_path / "not_a_store"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a zarr store"):
        EpisodeStore(precious, "w")
    assert (precious / "notes.txt").exists()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda s, f: s.update(reward=s["reward"][:-1]), "differ in length"),
        (lambda s, f: s.update(image_wrist=s["image_wrist"].astype(np.float32)), "image_wrist"),
        (lambda s, f: s.update(image_wrist=s["image_wrist"][:, 0]), "image_wrist"),
        (lambda s, f: [s.update({k: v[:0]}) for k, v in list(s.items())], "T must be >= 1"),
        (lambda s, f: s.update(reward=np.float32(1.0)), "reward"),
        (lambda s, f: f.pop("state"), "final_obs keys"),
        (lambda s, f: f.update(state=f["state"][:3]), "final_obs\\['state'\\]"),
    ],
)
def test_validation_first_episode(tmp_path: Path, change, match: str) -> None:
    store = EpisodeStore(tmp_path / "s.zarr", "w")
    steps, final = make_episode(4)
    change(steps, final)
    with pytest.raises(ValueError, match=match):
        store.append_episode(steps, final)
    assert store.n_episodes == 0


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda s: s.pop("intervened"), "missing \\['intervened'\\]"),
        (lambda s: s.update(extra=np.zeros(len(s["state"]))), "unexpected \\['extra'\\]"),
        (lambda s: s.update(state=s["state"].astype(np.float64)), "steps\\['state'\\]"),
        (lambda s: s.update(action=np.zeros((len(s["state"]), 3), np.float32)), "steps\\['action'\\]"),
    ],
)
def test_validation_against_existing_episodes(tmp_path: Path, change, match: str) -> None:
    store = EpisodeStore(tmp_path / "s.zarr", "w")
    store.append_episode(*make_episode(4))
    steps, final = make_episode(3, seed=1)
    change(steps)
    with pytest.raises(ValueError, match=match):
        store.append_episode(steps, final)
    assert EpisodeStore(tmp_path / "s.zarr", "r").n_steps == 4


def test_index_errors(tmp_path: Path) -> None:
    store = EpisodeStore(tmp_path / "s.zarr", "w")
    store.append_episode(*make_episode(4))
    with pytest.raises(IndexError):
        store.episode(1)
    with pytest.raises(IndexError):
        store.final_obs(5)
    with pytest.raises(IndexError):
        store.steps(2, 5)


def test_crash_tail_is_ignored_then_truncated(tmp_path: Path) -> None:
    """Rows written without their episode_ends commit (a crash mid-append) are not an episode."""
    path = tmp_path / "s.zarr"
    store = EpisodeStore(path, "w")
    first, first_final = make_episode(4)
    store.append_episode(first, first_final)
    # simulate the crash: data and final rows written, episode_ends extended but never filled in
    root = zarr.open_group(path, mode="r+")
    for _, arr in root["data"].arrays():
        arr.resize((9, *arr.shape[1:]))
    root["meta/final_state"].resize((2, 5))
    root["meta/episode_ends"].resize((2,))

    ro = EpisodeStore(path, "r")
    assert ro.n_episodes == 1 and ro.n_steps == 4
    assert_equal_dicts(ro.episode(0), first)
    assert root["data/state"].shape[0] == 9  # "r" leaves the files alone

    store = EpisodeStore(path, "a")
    assert store.n_episodes == 1
    assert root["data/state"].shape[0] == 4
    second, second_final = make_episode(3, seed=5)
    store.append_episode(second, second_final)
    again = EpisodeStore(path, "r")
    np.testing.assert_array_equal(again.episode_ends, [4, 7])
    assert_equal_dicts(again.episode(1), second)
    assert_equal_dicts(again.final_obs(1), second_final)
    assert_equal_dicts(again.final_obs(0), first_final)


def test_crash_during_first_episode_allows_new_keys(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    EpisodeStore(path, "w")
    root = zarr.open_group(path, mode="r+")
    root["data"].create_array("junk", shape=(3,), dtype="float64")
    store = EpisodeStore(path, "a")
    assert store.keys == []
    store.append_episode(*make_episode(2))
    assert "junk" not in EpisodeStore(path, "r").keys


WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from test_episode_store import make_episode
    from robot_rl.data.episode_store import EpisodeStore
    store = EpisodeStore({path!r}, "a")
    for i in range(10_000):
        store.append_episode(*make_episode(3 + i % 5, seed=i, cams=("wrist", "front")))
        print(i, flush=True)
    """
)


def test_sigkill_mid_append_keeps_finished_episodes(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    script = WRITER.format(tests=str(Path(__file__).parent), path=str(path))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    committed = -1
    for line in proc.stdout:
        committed = int(line)
        if committed >= 15:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert committed >= 15

    store = EpisodeStore(path, "a")
    assert store.n_episodes >= committed + 1
    for i in range(store.n_episodes):
        steps, final = make_episode(3 + i % 5, seed=i, cams=("wrist", "front"))
        assert_equal_dicts(store.episode(i), steps)
        assert_equal_dicts(store.final_obs(i), final)
    for key in store.keys:
        assert zarr.open_group(path, mode="r")["data"][key].shape[0] == store.n_steps
    store.append_episode(*make_episode(3, seed=99, cams=("wrist", "front")))
    assert EpisodeStore(path, "r").n_episodes == store.n_episodes


def test_malformed_stores(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    EpisodeStore(path, "w").append_episode(*make_episode(4))
    root = zarr.open_group(path, mode="r+")
    ends = root["meta/episode_ends"]

    ends.resize((2,))
    ends[:] = [4, 2]
    with pytest.raises(ValueError, match="not monotonic"):
        EpisodeStore(path, "r")
    ends[:] = [4, 9]
    with pytest.raises(ValueError, match="past the length"):
        EpisodeStore(path, "r")
    del root["meta/episode_ends"]
    with pytest.raises(ValueError, match="missing meta/episode_ends"):
        EpisodeStore(path, "a")
    del root["data"]
    with pytest.raises(ValueError, match="missing 'data' group"):
        EpisodeStore(path, "r")


def write_diffusion_policy_store(path: Path, lengths: list[int]) -> dict[str, np.ndarray]:
    """A store as diffusion_policy's ReplayBuffer saves one: zarr v2, Blosc, keys img/state/action."""
    rng = np.random.default_rng(0)
    n = sum(lengths)
    data = {
        "img": rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8),
        "state": rng.normal(size=(n, 5)).astype(np.float32),
        "action": rng.normal(size=(n, 2)).astype(np.float32),
    }
    root = zarr.open_group(path, mode="w", zarr_format=2)
    group = root.create_group("data")
    blosc = numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.NOSHUFFLE)
    for key, value in data.items():
        arr = group.create_array(
            key, shape=value.shape, chunks=(7, *value.shape[1:]), dtype=value.dtype, compressors=blosc
        )
        arr[:] = value
    meta = root.create_group("meta")
    ends = meta.create_array("episode_ends", shape=(len(lengths),), dtype=np.int64, compressors=None)
    ends[:] = np.cumsum(lengths)
    return data


def test_opens_diffusion_policy_store(tmp_path: Path) -> None:
    path = tmp_path / "pusht.zarr"
    data = write_diffusion_policy_store(path, [5, 8, 4])
    store = EpisodeStore(path, "r")
    assert store.n_episodes == 3 and store.n_steps == 17
    assert store.keys == ["action", "img", "state"]
    np.testing.assert_array_equal(store.episode(1)["img"], data["img"][5:13])
    assert store.final_obs(0) is None

    # appending to it keeps it a valid diffusion_policy store and adds final observations
    store = EpisodeStore(path, "a")
    rng = np.random.default_rng(1)
    new = {k: v[:3] for k, v in data.items()}
    final = {"state": rng.normal(size=5).astype(np.float32)}
    store.append_episode(new, final)
    again = EpisodeStore(path, "r")
    np.testing.assert_array_equal(again.episode_ends, [5, 13, 17, 20])
    assert again.final_obs(2) is None
    assert_equal_dicts(again.final_obs(3), final)


def test_rerecorded_flag_round_trips_and_survives_a_crash_tail(tmp_path: Path) -> None:
    """meta/rerecorded: one checksummed row per episode, read back as written, truncated with a
    crashed append like the other per-episode arrays."""
    from robot_rl.data.integrity import has_checksum, scan

    path = tmp_path / "s.zarr"
    store = EpisodeStore(path, "w")
    for i, flag in enumerate((False, True, False)):
        store.append_episode(*make_episode(3, seed=i), rerecorded=flag)
    again = EpisodeStore(path, "r")
    assert [again.rerecorded(i) for i in range(3)] == [False, True, False]
    assert again.rerecorded(-2) is True
    root = zarr.open_group(path, mode="r+")
    assert has_checksum(root["meta/rerecorded"]) and root["meta/rerecorded"].dtype == bool
    assert not scan(path).damages
    root["meta/rerecorded"].resize((4,))  # a crash after the flag row, before the commit
    EpisodeStore(path, "a").append_episode(*make_episode(2, seed=9), rerecorded=True)
    after = EpisodeStore(path, "r")
    assert [after.rerecorded(i) for i in range(4)] == [False, True, False, True]


def test_store_without_the_flag_reads_all_false_and_gains_it(tmp_path: Path) -> None:
    """A store written before the flag existed opens, reads every episode as not re-recorded, and
    gets the array (zeros for its old episodes, every chunk present) on its next append."""
    from robot_rl.data.integrity import scan

    path = tmp_path / "s.zarr"
    store = EpisodeStore(path, "w")
    for i in range(2):
        store.append_episode(*make_episode(3, seed=i))
    del zarr.open_group(path, mode="r+")["meta"]["rerecorded"]  # as an older robot-rl wrote it
    old = EpisodeStore(path, "a")
    assert [old.rerecorded(i) for i in range(2)] == [False, False]
    old.append_episode(*make_episode(3, seed=2), rerecorded=True)
    again = EpisodeStore(path, "r")
    assert [again.rerecorded(i) for i in range(3)] == [False, False, True]
    assert not scan(path).damages


def test_steps_of_some_keys_only(tmp_path: Path) -> None:
    store = EpisodeStore(tmp_path / "s.zarr", "w")
    steps, final = make_episode(4)
    store.append_episode(steps, final)
    got = store.steps(1, 4, keys=("reward", "t_obs", "not_stored"))  # e.g. no images
    assert set(got) == {"reward", "t_obs"}
    np.testing.assert_array_equal(got["reward"], steps["reward"][1:4])
