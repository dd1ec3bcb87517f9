"""Damaged episode stores: caught in one line, nothing changed, damaged episodes set aside on request."""

from __future__ import annotations

import shutil
from pathlib import Path

import numcodecs
import numpy as np
import pytest
import zarr

from robot_rl.cli import main as cli_main
from robot_rl.data.episode_store import EpisodeStore
from robot_rl.data.integrity import StoreDamaged, drop_damaged, scan
from robot_rl.data.replay import ReplayBuffer
from tests.robot_rl.data.test_episode_store import assert_equal_dicts, make_episode

LENGTHS = [5, 5, 5, 5, 5, 5, 5, 5]  # ends 5, 10, ..., 40; with 8-row chunks, chunk c holds rows 8c..8c+7


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    """A small store written the way an actor writes one (every key, a camera, final observations)."""
    path = tmp_path_factory.mktemp("pristine") / "episodes.zarr"
    store = EpisodeStore(path, "w", chunk_steps=8)
    episodes = [make_episode(t, seed=i) for i, t in enumerate(LENGTHS)]
    for steps, final in episodes:
        store.append_episode(steps, final)
    store.attrs["env"] = {"id": "PickCube"}
    return path, episodes


@pytest.fixture
def copy(pristine: tuple[Path, list], tmp_path: Path) -> Path:
    dst = tmp_path / "episodes.zarr"
    shutil.copytree(pristine[0], dst)
    return dst


def snapshot(path: Path) -> dict[str, bytes]:
    return {str(f.relative_to(path)): f.read_bytes() for f in sorted(path.rglob("*")) if f.is_file()}


def flip_bytes(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    for i in range(20, 36):  # 16 bytes inside the compressed payload
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))


def cut_short(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def cut_ends(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:20])  # 2 whole int64 values and half of the third


# damage, file, the episodes whose rows or bounds the file holds
CASES = {
    "flipped": (flip_bytes, "data/action/1.0", [1, 2, 3]),  # rows 8-15: episodes 1 (5-9) to 3 (15-19)
    "truncated": (cut_short, "data/state/2.0", [3, 4]),  # rows 16-23
    "deleted": (Path.unlink, "data/reward/4", [6, 7]),  # rows 32-39
    "ends_cut": (cut_ends, "meta/episode_ends/0", [2, 3, 4, 5, 6, 7]),  # ends 0-1 survive the cut
}


def _open_and_read(path: Path, mode: str) -> None:
    store = EpisodeStore(path, mode)
    for _ in store.episodes():
        pass


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("mode", ["r", "a"])
def test_damage_is_one_line_and_changes_nothing(copy: Path, name: str, mode: str) -> None:
    damage, file, _ = CASES[name]
    damage(copy / file)
    before = snapshot(copy)
    with pytest.raises(StoreDamaged) as info:
        _open_and_read(copy, mode)
    message = str(info.value)
    assert "\n" not in message
    assert str(copy / file) in message or str(copy / file.rsplit("/", 1)[0]) in message
    assert file.rsplit("/", 1)[0] in message  # the array
    assert info.value.episodes == CASES[name][2]
    assert snapshot(copy) == before


@pytest.mark.parametrize("name", list(CASES))
def test_verify_and_drop_damaged(copy: Path, pristine: tuple[Path, list], name: str, capsys) -> None:
    damage, file, _ = CASES[name]
    damage(copy / file)
    before = snapshot(copy)
    expected = CASES[name][2]
    with pytest.raises(SystemExit, match="--drop-damaged"):
        cli_main(["verify", str(copy)])
    assert "DAMAGED " + file.rsplit("/", 1)[0] in capsys.readouterr().out
    assert snapshot(copy) == before

    cli_main(["verify", str(copy), "--drop-damaged"])
    (aside,) = copy.parent.glob("episodes.zarr.damaged-*")
    assert snapshot(aside) == before  # kept aside unchanged, never deleted
    store = EpisodeStore(copy, "r")
    kept = [i for i in range(len(LENGTHS)) if i not in expected]
    assert store.n_episodes == len(kept)
    assert store.attrs["env"] == {"id": "PickCube"}
    episodes = pristine[1]
    for j, i in enumerate(kept):
        assert_equal_dicts(store.episode(j), episodes[i][0])
        assert_equal_dicts(store.final_obs(j), episodes[i][1])
    assert not scan(copy).damages


def test_whole_store_verifies_and_opens_in_plain_zarr(copy: Path, pristine: tuple[Path, list]) -> None:
    report = scan(copy)
    assert report.damages == [] and report.unchecked == [] and report.n_steps == sum(LENGTHS)
    assert drop_damaged(copy, report) == (copy, [])
    # a plain zarr reader (as diffusion_policy's) decodes the checksummed chunks
    root = zarr.open_group(copy, mode="r")
    episodes = pristine[1]
    np.testing.assert_array_equal(root["data/action"][5:10], episodes[1][0]["action"])
    assert root["data/action"].metadata.compressor.codec_id == "crc32"


def test_chunks_of_fill_values_are_written(tmp_path: Path) -> None:
    """An all-False flag chunk is a file too, so a missing file always means damage."""
    store = EpisodeStore(tmp_path / "s.zarr", "w", chunk_steps=4)
    steps, final = make_episode(8)
    steps["truncated"][:] = False
    store.append_episode(steps, final)
    assert sorted(p.name for p in (tmp_path / "s.zarr/data/truncated").glob("[0-9]*")) == ["0", "1"]


def write_old_store(path: Path, lengths: list[int]) -> list[dict[str, np.ndarray]]:
    """A store as robot-rl wrote them before checksums: blosc only, all-zero chunks left unwritten."""
    episodes = [make_episode(t, seed=i)[0] for i, t in enumerate(lengths)]
    root = zarr.open_group(path, mode="w", zarr_format=2)
    data, meta = root.create_group("data"), root.create_group("meta")
    for key in episodes[0]:
        value = np.concatenate([e[key] for e in episodes])
        arr = data.create_array(
            key, shape=value.shape, chunks=(4, *value.shape[1:]), dtype=value.dtype,
            compressors=numcodecs.Blosc(cname="zstd", clevel=1), fill_value=0,
        )  # fmt: skip
        arr[:] = value
    ends = meta.create_array(
        "episode_ends", shape=(len(lengths),), chunks=(4096,), dtype=np.int64, compressors=None
    )
    ends[:] = np.cumsum(lengths)
    return episodes


def test_old_store_without_checksums_opens_and_fills_the_replay(tmp_path: Path, capsys) -> None:
    path = tmp_path / "old.zarr"
    episodes = write_old_store(path, [6, 3, 7])
    cli_main(["verify", str(path)])
    out = capsys.readouterr().out
    assert "no checksums" in out and out.rstrip().endswith("ok")
    store = EpisodeStore(path, "a")
    replay = ReplayBuffer(
        64, {"state": ((5,), np.dtype(np.float32)), "image_wrist": ((8, 8, 3), np.dtype(np.uint8))}, 2
    )
    for i, (steps, final) in enumerate(store.episodes()):
        assert_equal_dicts(steps, episodes[i])
        replay.add_episode(steps, final)
    assert len(replay) == 6 + 3 + 7  # no final observations, but every episode ends terminated
    batch = replay.sample(8)
    assert batch.action.shape == (8, 2)
    # appending to it keeps working, the new arrays' chunks unchecked like the old ones
    store.append_episode(*make_episode(4, seed=9))
    assert EpisodeStore(path, "r").n_episodes == 4
