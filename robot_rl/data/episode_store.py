"""Zarr episode store in diffusion_policy's replay-buffer layout.

Layout (zarr format 2, so diffusion_policy's zarr-2 code opens it too):
    data/<key>            [N_steps, ...]  per-step arrays of all episodes, concatenated in time
    meta/episode_ends     int64[N_ep]     cumulative end index of each episode
    meta/has_final_obs    bool[N_ep]      whether meta/final_<key> holds episode i's last observation
    meta/final_<key>      [N_ep, ...]     observation after the last step ("state", "image_<cam>")
    meta/rerecorded       bool[N_ep]      a person pressed re-record: kept, but not for training
                                          (absent in stores written before the flag: all False)

Keys in our own episodes are "state", "image_<cam>" (uint8 [T, H, W, 3]) and robot_rl.transition.STEP_KEYS;
stores written by diffusion_policy (keys such as "img", "state", "action") open as well.

Crash safety: an append writes data/ first, then meta/final_*, and extends meta/episode_ends last,
each chunk and metadata file being replaced atomically by zarr's LocalStore. A crash therefore
leaves at most rows past the last committed episode, which are ignored on read and truncated when
the store is next opened for writing.

Damage (robot_rl.data.integrity): every chunk written here carries a CRC32. Opening checks
meta/episode_ends and that no chunk file of the recorded range is missing; a read that meets a
bad chunk stops with StoreDamaged, one line naming the file, the array and the episodes. Neither
changes a byte: the repair of a crashed append runs only on a store found whole.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import zarr
from zarr.core.sync import sync as _zarr_sync

from robot_rl.data.integrity import (
    Damage,
    StoreDamaged,
    checksummed_codecs,
    episodes_in,
    read_ends,
    scan_array,
    scan_rows,
    writer,
)
from robot_rl.transition import IMAGE_PREFIX

DEFAULT_CHUNK_STEPS = 1024  # low-dim rows per chunk: few files, cheap partial-chunk rewrites
IMAGE_CHUNK_BYTES = 256 * 1024  # a few frames per chunk so random frame reads stay cheap
ENDS_CHUNK = 4096  # meta/episode_ends rows per chunk (rewritten on every append)
ENDS_FILL = -1  # an extended-but-unwritten episode_ends row reads as this: a torn commit
FINAL_PREFIX = "final_"
EPISODE_FLAGS = ("has_final_obs", "rerecorded")  # meta/<flag> bool[N_ep], one row per episode
MODES = ("r", "a", "w")


def _compressor(is_image: bool) -> numcodecs.Blosc:
    # zstd level 1 is as fast as lz4 here and compresses noisy camera frames where lz4 does not;
    # byte shuffle helps multi-byte low-dim data and does nothing for uint8 pixels.
    shuffle = numcodecs.Blosc.NOSHUFFLE if is_image else numcodecs.Blosc.SHUFFLE
    return numcodecs.Blosc(cname="zstd", clevel=1, shuffle=shuffle)


def _is_obs_key(key: str) -> bool:
    return key == "state" or key.startswith(IMAGE_PREFIX)


def _is_per_episode(key: str) -> bool:
    """meta/<key> holds one row per episode (written by append_episode, truncated with it)."""
    return key.startswith(FINAL_PREFIX) or key in EPISODE_FLAGS


def _write_rows(jobs: list[tuple[zarr.Array, int, np.ndarray]]) -> None:
    """For each (array, start, rows): grow the array to start + len(rows), write rows at start.

    All arrays are written concurrently on zarr's event loop (compression overlaps file I/O);
    the call returns once every write has landed.
    """

    async def put(arr: zarr.Array, start: int, rows: np.ndarray) -> None:
        a = arr.async_array
        await a.resize((start + len(rows), *a.shape[1:]))
        await a.setitem(slice(start, start + len(rows)), rows)

    async def put_all() -> None:
        await asyncio.gather(*(put(*job) for job in jobs))

    _zarr_sync(put_all())


class EpisodeStore:
    """Episodes on disk, appended one at a time, read by episode or by global step range.

    Args:
        path: directory of the zarr store.
        mode: "r" read-only, "a" open or create (repairing a crashed append), "w" overwrite.
        chunk_steps: rows per chunk for new low-dim arrays (images are chunked per few frames).
    """

    def __init__(self, path: str | Path, mode: str = "a", chunk_steps: int | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if chunk_steps is not None and chunk_steps < 1:
            raise ValueError(f"chunk_steps must be >= 1, got {chunk_steps}")
        self.path = Path(path)
        self.mode = mode
        self.chunk_steps = chunk_steps or DEFAULT_CHUNK_STEPS
        if mode == "r" and not self.path.exists():
            raise FileNotFoundError(f"episode store {self.path} does not exist")
        if mode == "w" and self.path.exists():
            # never delete a directory that is not a zarr store (a mistyped path must not cost data)
            is_store = (self.path / ".zgroup").exists() or (self.path / "zarr.json").exists()
            if self.path.is_file() or not (is_store or not any(self.path.iterdir())):
                raise FileExistsError(f"{self.path} exists and is not a zarr store; refusing to overwrite")
            shutil.rmtree(self.path)
        if not self.path.exists():
            self._root = zarr.open_group(self.path, mode="w", zarr_format=2)
        else:
            # zarr_format left open: read whichever format the store was written in
            self._root = zarr.open_group(self.path, mode="r" if mode == "r" else "r+")
        if mode != "r" and len(list(self._root.keys())) == 0:
            self._root.create_group("data")
            meta = self._root.create_group("meta")
            meta.create_array(
                "episode_ends", shape=(0,), chunks=(ENDS_CHUNK,), dtype="int64",
                fill_value=ENDS_FILL, **checksummed_codecs(None),
            )  # fmt: skip
        self._data, self._meta = self._check_layout()
        self._ends_arr = writer(self._meta["episode_ends"])
        self._ends = self._read_ends()
        self._check_chunks_present()
        if mode != "r":
            self._truncate_tails()
        # opened once: looking an array up by name re-reads its metadata from disk
        self._arrays: dict[str, zarr.Array] = {k: writer(a) for k, a in self._data.arrays()}
        self._finals: dict[str, zarr.Array] = {
            k: writer(a) for k, a in self._meta.arrays() if _is_per_episode(k)
        }

    # ------------------------------------------------------------------ open / repair
    def _check_layout(self) -> tuple[zarr.Group, zarr.Group]:
        """The data and meta groups, or ValueError naming what is missing."""
        for name in ("data", "meta"):
            if name not in self._root or not isinstance(self._root[name], zarr.Group):
                raise ValueError(f"episode store {self.path}: missing '{name}' group")
        meta = self._root["meta"]
        if "episode_ends" not in meta or not isinstance(meta["episode_ends"], zarr.Array):
            raise ValueError(f"episode store {self.path}: missing meta/episode_ends")
        return self._root["data"], meta

    def _read_ends(self) -> np.ndarray:
        """meta/episode_ends without a torn last commit, checked against the data arrays."""
        arr = self._meta["episode_ends"]
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"episode store {self.path}: meta/episode_ends must be a 1-D integer array")
        ends, _, damages = read_ends(self.path, arr)
        if damages:
            raise StoreDamaged(self.path, damages, len(ends))
        fill = arr.fill_value
        # A crash between extending episode_ends and writing its new row leaves fill values at
        # the end; those episodes never committed.
        n = len(ends)
        while n > 0 and fill is not None and ends[n - 1] == fill and (n == 1 or ends[n - 2] > fill):
            n -= 1
        ends = ends[:n]
        if n and (ends[0] < 0 or np.any(np.diff(ends) < 0)):
            raise ValueError(f"episode store {self.path}: meta/episode_ends is not monotonic: {ends[:20]}")
        n_steps = int(ends[-1]) if n else 0
        key, data = min(self._data.arrays(), key=lambda kv: kv[1].shape[0], default=(None, None))
        if data is not None and data.shape[0] < n_steps:
            why = f"holds {data.shape[0]} steps: meta/episode_ends ends at step {n_steps}, past the length"
            lost = [i for i in range(n) if ends[i] > data.shape[0]]
            raise StoreDamaged(self.path, [Damage(f"data/{key}", self.path / data.path, why, lost)], n)
        return ends

    def _check_chunks_present(self) -> None:
        """No chunk file of the recorded range missing (cheap: no chunk is read)."""
        missing = scan_rows(self.path, self._root, self._ends, read=False)
        if missing:
            raise StoreDamaged(self.path, missing, self.n_episodes)

    def _damaged(self, err: Exception, arr: zarr.Array, name: str, rows: int, per_step: bool) -> Exception:
        """The StoreDamaged naming the chunk a failed read met, or err itself if every chunk reads."""
        of = episodes_in(self._ends) if per_step else (lambda a, b: list(range(a, b)))
        damages = scan_array(self.path, arr, rows, name, of)
        return StoreDamaged(self.path, damages, self.n_episodes) if damages else err

    def _truncate_tails(self) -> None:
        """Drop rows left by a crashed append so the next append starts clean."""
        if len(self._ends) < self._ends_arr.shape[0]:
            self._ends_arr.resize((len(self._ends),))
        if self.n_episodes == 0:
            # a crash during the first append may have created arrays with keys or dtypes that
            # no committed episode ever had; start from nothing
            for key in list(self._data.array_keys()):
                del self._data[key]
            for key in list(self._meta.array_keys()):
                if _is_per_episode(key):
                    del self._meta[key]
            return
        for _, arr in self._data.arrays():
            if arr.shape[0] > self.n_steps:
                arr.resize((self.n_steps, *arr.shape[1:]))
        for key, arr in self._meta.arrays():
            if _is_per_episode(key) and arr.shape[0] > self.n_episodes:
                arr.resize((self.n_episodes, *arr.shape[1:]))

    # ------------------------------------------------------------------ properties
    @property
    def n_episodes(self) -> int:
        return len(self._ends)

    @property
    def n_steps(self) -> int:
        return int(self._ends[-1]) if len(self._ends) else 0

    @property
    def episode_ends(self) -> np.ndarray:
        """int64[N_ep] cumulative end step of each committed episode (a copy)."""
        return self._ends.copy()

    @property
    def keys(self) -> list[str]:
        """Sorted per-step keys (the arrays under data/)."""
        return sorted(self._arrays)

    @property
    def attrs(self) -> MutableMapping[str, Any]:
        """Store attributes (JSON values), e.g. env spec and actor id; persisted on assignment."""
        return self._root.attrs

    def __len__(self) -> int:
        return self.n_episodes

    def __repr__(self) -> str:
        return f"EpisodeStore({str(self.path)!r}, episodes={self.n_episodes}, steps={self.n_steps})"

    # ------------------------------------------------------------------ append
    def append_episode(
        self,
        steps: Mapping[str, np.ndarray],
        final_obs: Mapping[str, np.ndarray] | None = None,
        rerecorded: bool = False,
    ) -> None:
        """Append one episode.

        Args:
            steps: per-step arrays, all of length T >= 1: "state" [T, D], "image_<cam>" uint8
                [T, H, W, 3], and the STEP_KEYS ("action" [T, A], "reward" [T], ...).
            final_obs: observation after the last step ({"state": [D], "image_<cam>": [H, W, 3]}),
                or None when there is none (e.g. a demo that ended without one).
            rerecorded: a person asked for the episode to be recorded again: it is stored (nothing
                recorded is lost) and flagged, and training leaves it out.
        """
        if self.mode == "r":
            raise PermissionError(f"episode store {self.path} is open read-only")
        steps = self._validate_steps(steps)
        final = self._validate_final(steps, final_obs)
        start, t = self.n_steps, len(next(iter(steps.values())))
        # data first ...
        for key, value in steps.items():
            if key not in self._arrays:
                self._arrays[key] = self._create_data_array(key, value)
        _write_rows([(self._arrays[key], start, value) for key, value in steps.items()])
        # ... then the final observation row (zeros where there is none, keeping row == episode) ...
        self._append_final(steps, final, rerecorded)
        # ... and the commit: episode_ends last
        _write_rows([(self._ends_arr, self.n_episodes, np.array([start + t], dtype=np.int64))])
        self._ends = np.append(self._ends, np.int64(start + t))

    def _create_data_array(self, key: str, value: np.ndarray) -> zarr.Array:
        image = value.ndim >= 3
        if image:
            frame_bytes = max(1, value[0].nbytes)
            rows = max(1, IMAGE_CHUNK_BYTES // frame_bytes)
        else:
            rows = self.chunk_steps
        return writer(self._data.create_array(
            key, shape=(0, *value.shape[1:]), chunks=(rows, *value.shape[1:]), dtype=value.dtype,
            fill_value=0, **checksummed_codecs(_compressor(image)),
        ))  # fmt: skip

    def _append_final(
        self, steps: Mapping[str, np.ndarray], final: dict[str, np.ndarray] | None, rerecorded: bool
    ) -> None:
        """Episode i's rows of the per-episode meta arrays: final observation and flags."""
        i = self.n_episodes
        if "has_final_obs" not in self._finals:
            self._finals["has_final_obs"] = self._meta_array("has_final_obs", (), np.dtype(bool))
        if "rerecorded" not in self._finals:
            # a store written before the flag gets it, all False for its earlier episodes
            self._finals["rerecorded"] = self._meta_array("rerecorded", (), np.dtype(bool), fill_rows=True)
        for key in final or ():
            if FINAL_PREFIX + key not in self._finals:
                arr = self._meta_array(FINAL_PREFIX + key, steps[key].shape[1:], steps[key].dtype)
                self._finals[FINAL_PREFIX + key] = arr
        jobs = []
        for key, arr in self._finals.items():
            if key == "has_final_obs":
                row = np.array([final is not None])
            elif key == "rerecorded":
                row = np.array([rerecorded])
            elif final is not None and key[len(FINAL_PREFIX) :] in final:
                row = final[key[len(FINAL_PREFIX) :]][None]
            else:
                row = np.zeros((1, *arr.shape[1:]), dtype=arr.dtype)
            jobs.append((arr, i, row))
        _write_rows(jobs)

    def _meta_array(
        self, key: str, shape: tuple[int, ...], dtype: np.dtype, fill_rows: bool = False
    ) -> zarr.Array:
        """meta/<key> with one row per committed episode, created zero-filled if absent
        (fill_rows: the zeros written, so the checksummed chunks of earlier episodes exist)."""
        if key in self._meta:
            return writer(self._meta[key])
        image = len(shape) >= 2
        rows = max(1, IMAGE_CHUNK_BYTES // max(1, int(np.prod(shape)) * dtype.itemsize)) if image else 1024
        arr = self._meta.create_array(
            key, shape=(self.n_episodes, *shape), chunks=(rows, *shape), dtype=dtype,
            fill_value=0, **checksummed_codecs(_compressor(image)),
        )  # fmt: skip
        if fill_rows and self.n_episodes:
            _write_rows([(writer(arr), 0, np.zeros((self.n_episodes, *shape), dtype))])
        return writer(arr)

    def _validate_steps(self, steps: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not steps:
            raise ValueError("episode has no keys")
        out = {k: np.asarray(v) for k, v in steps.items()}
        lengths = {k: (v.shape[0] if v.ndim else None) for k, v in out.items()}
        for key, n in lengths.items():
            if n is None:
                raise ValueError(f"steps[{key!r}] is a scalar; every key needs a leading time axis")
        if len(set(lengths.values())) > 1:
            raise ValueError(f"steps arrays differ in length: {lengths}")
        if next(iter(lengths.values())) < 1:
            raise ValueError("episode has no steps (T must be >= 1)")
        for key, v in out.items():
            if key.startswith(IMAGE_PREFIX) and (v.dtype != np.uint8 or v.ndim != 4):
                raise ValueError(f"steps[{key!r}] must be uint8 [T, H, W, C], got {v.dtype} {v.shape}")
        if self.n_episodes:
            self._check_matches_store(out)
        return out

    def _check_matches_store(self, steps: Mapping[str, np.ndarray]) -> None:
        have, want = set(steps), set(self._arrays)
        if have != want:
            raise ValueError(
                f"episode keys differ from the store's: missing {sorted(want - have)}, "
                f"unexpected {sorted(have - want)}"
            )
        for key, v in steps.items():
            arr = self._arrays[key]
            if v.dtype != arr.dtype or v.shape[1:] != arr.shape[1:]:
                raise ValueError(
                    f"steps[{key!r}] is {v.dtype} {v.shape[1:]} per step but the store holds "
                    f"{arr.dtype} {arr.shape[1:]}"
                )

    @staticmethod
    def _validate_final(
        steps: Mapping[str, np.ndarray], final_obs: Mapping[str, np.ndarray] | None
    ) -> dict[str, np.ndarray] | None:
        if final_obs is None:
            return None
        final = {k: np.asarray(v) for k, v in final_obs.items()}
        obs_keys = {k for k in steps if _is_obs_key(k)}
        if set(final) != obs_keys:
            raise ValueError(
                f"final_obs keys {sorted(final)} must be the episode's observation keys {sorted(obs_keys)}"
            )
        for key, v in final.items():
            if v.dtype != steps[key].dtype or v.shape != steps[key].shape[1:]:
                raise ValueError(
                    f"final_obs[{key!r}] is {v.dtype} {v.shape}, expected {steps[key].dtype} "
                    f"{steps[key].shape[1:]} like steps[{key!r}][0]"
                )
        return final

    # ------------------------------------------------------------------ read
    def _bounds(self, i: int) -> tuple[int, int]:
        n = self.n_episodes
        if not -n <= i < n:
            raise IndexError(f"episode {i} out of range for a store with {n} episodes")
        i %= n
        return (int(self._ends[i - 1]) if i else 0), int(self._ends[i])

    def episode(self, i: int) -> dict[str, np.ndarray]:
        """Per-step arrays of episode i: {key: [T_i, ...]}."""
        return self.steps(*self._bounds(i))

    def steps(self, start: int, stop: int, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Per-step arrays of global steps [start, stop) across episodes: {key: [stop - start, ...]};
        only those of `keys` that the store holds when given (e.g. the small ones, not the images)."""
        if not 0 <= start <= stop <= self.n_steps:
            raise IndexError(f"step range [{start}, {stop}) outside [0, {self.n_steps})")
        out = {}
        for key in sorted(self._arrays if keys is None else set(keys) & set(self._arrays)):
            try:
                out[key] = self._arrays[key][start:stop]
            except Exception as err:
                raise self._damaged(err, self._arrays[key], f"data/{key}", self.n_steps, True) from err
        return out

    def final_obs(self, i: int) -> dict[str, np.ndarray] | None:
        """Observation after the last step of episode i ({"state": [D], "image_<cam>": [H, W, 3]}),
        or None if the episode was stored without one (always None for diffusion_policy stores)."""
        self._bounds(i)
        i %= self.n_episodes
        has = self._finals.get("has_final_obs")
        if has is None or i >= has.shape[0] or not bool(self._final_row("has_final_obs", has, i)):
            return None
        return {
            key[len(FINAL_PREFIX) :]: self._final_row(key, arr, i)
            for key, arr in sorted(self._finals.items())
            if key.startswith(FINAL_PREFIX) and i < arr.shape[0]
        }

    def rerecorded(self, i: int) -> bool:
        """Whether a person re-recorded episode i (False in stores written before the flag)."""
        self._bounds(i)
        i %= self.n_episodes
        arr = self._finals.get("rerecorded")
        return arr is not None and i < arr.shape[0] and bool(self._final_row("rerecorded", arr, i))

    def _final_row(self, key: str, arr: zarr.Array, i: int) -> np.ndarray:
        try:
            return arr[i]
        except Exception as err:
            raise self._damaged(err, arr, f"meta/{key}", min(self.n_episodes, arr.shape[0]), False) from err

    def episodes(self) -> Iterator[tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]]:
        """(steps, final_obs) for every committed episode, in order."""
        for i in range(self.n_episodes):
            yield self.episode(i), self.final_obs(i)
