"""Damage in an episode store: found, named in one line, and set aside on request.

New arrays are written with numcodecs' CRC32 as their zarr-2 `compressor`, wrapping the blosc
codec, which moves to `filters`: the checksum covers the bytes on disk and is checked before blosc
ever sees them, and any zarr-2 reader with numcodecs (diffusion_policy's included) still opens the
store. Such arrays also write chunks that hold only fill values, so a missing chunk file inside
the recorded range is damage, never "all zeros". Arrays written before this (no checksum) are
checked for readability only; a deleted chunk of theirs still reads as fill values.

`scan` reads every chunk of the recorded range and reports each damaged one with the episodes it
touches; `drop_damaged` moves the store aside unchanged (it is never deleted) and writes a new one
at the same path holding every undamaged episode.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numcodecs
import numpy as np
import zarr

CHECKSUM_ID = "crc32"
EpisodesOf = Callable[[int, int], list[int]]


@dataclass
class Damage:
    """One damaged chunk: which array, which file, why, and the episodes it touches."""

    array: str  # e.g. "data/action", "meta/episode_ends"
    file: Path
    why: str
    episodes: list[int]


class StoreDamaged(ValueError):
    """An episode store whose bytes are not what was written. The message is one line."""

    def __init__(self, path: Path, damages: list[Damage], n_episodes: int) -> None:
        self.path = Path(path)
        self.damages = damages
        self.episodes = sorted({e for d in damages for e in d.episodes})
        first = damages[0]
        more = f" (and {len(damages) - 1} more damaged chunks)" if len(damages) > 1 else ""
        super().__init__(
            f"episode store {path} is damaged: {first.array} {first.why} in {first.file}{more}; "
            f"episodes affected: {_ranges(self.episodes)} of {n_episodes}; nothing was changed; "
            f"`robot-rl verify {path} --drop-damaged` sets them aside and keeps the rest"
        )


def _ranges(items: list[int]) -> str:
    """[0, 1, 2, 5] -> "0-2, 5"."""
    if not items:
        return "none"
    out, start, prev = [], items[0], items[0]
    for x in [*items[1:], None]:
        if x is not None and x == prev + 1:
            prev = x
            continue
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
        if x is not None:
            start = prev = x
    return ", ".join(out)


def checksummed_codecs(compressor: numcodecs.abc.Codec | None) -> dict:
    """create_array keyword arguments: a CRC32 over the stored bytes, around `compressor`."""
    return {"compressors": numcodecs.CRC32(), "filters": [compressor] if compressor is not None else None}


def has_checksum(arr: zarr.Array) -> bool:
    md = arr.metadata
    compressor = getattr(md, "compressor", None)
    return compressor is not None and compressor.codec_id == CHECKSUM_ID


def writer(arr: zarr.Array) -> zarr.Array:
    """The array as written to: chunks of fill values too, so a missing chunk is always damage."""
    return arr.with_config({"write_empty_chunks": True}) if has_checksum(arr) else arr


def chunk_file(root: Path, arr: zarr.Array, row_chunk: int) -> Path:
    """File of the first chunk of row-chunk `row_chunk` (v2 key "i.0.0" when one chunk spans a row)."""
    sep = getattr(arr.metadata, "dimension_separator", ".") or "."
    return root / arr.path / sep.join([str(row_chunk)] + ["0"] * (arr.ndim - 1))


def _chunk_files(root: Path, arr: zarr.Array, row_chunk: int) -> list[Path]:
    sep = getattr(arr.metadata, "dimension_separator", ".") or "."
    grid = [range(math.ceil(s / c)) for s, c in zip(arr.shape[1:], arr.chunks[1:], strict=True)]
    return [
        root / arr.path / sep.join(str(i) for i in (row_chunk, *rest)) for rest in itertools.product(*grid)
    ]


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


def scan_array(
    root: Path, arr: zarr.Array, rows: int, name: str, episodes_of: EpisodesOf, read: bool = True
) -> list[Damage]:
    """Damaged chunks among the first `rows` rows of `arr`; read=False only looks for missing files.

    episodes_of(start, stop): the episodes rows [start, stop) belong to.
    """
    per = arr.chunks[0]
    out = []
    for c in range(math.ceil(rows / per)):
        start, stop = c * per, min((c + 1) * per, rows)
        if start >= stop:
            continue
        why = None
        if has_checksum(arr):
            missing = [f for f in _chunk_files(root, arr, c) if not f.exists()]
            if missing:
                out.append(Damage(name, missing[0], "chunk file missing", episodes_of(start, stop)))
                continue
        if not read:
            continue
        try:
            arr[start:stop]
        except Exception as err:  # any decode failure: checksum, blosc, a short file
            why = _first_line(err)
        if why is not None:
            out.append(
                Damage(name, chunk_file(root, arr, c), f"unreadable ({why})", episodes_of(start, stop))
            )
    return out


def read_ends(root: Path, arr: zarr.Array) -> tuple[np.ndarray, np.ndarray, list[Damage]]:
    """meta/episode_ends as (values int64[N], known bool[N], damages).

    A damaged chunk's rows are unknown, except the whole int64 values before the cut of a
    truncated uncompressed chunk (a cut removes bytes; it changes none of those before it).
    """
    n, per = arr.shape[0], arr.chunks[0]
    values = np.zeros(n, np.int64)
    known = np.zeros(n, bool)
    damages = []
    for c in range(math.ceil(n / per)):
        start, stop = c * per, min((c + 1) * per, n)
        try:
            values[start:stop] = arr[start:stop]
            known[start:stop] = True
            continue
        except Exception as err:
            why, file = f"unreadable ({_first_line(err)})", chunk_file(root, arr, c)
        if not file.exists():
            why = "chunk file missing"
        elif not getattr(arr.metadata, "filters", None):
            raw = file.read_bytes()
            if has_checksum(arr) and getattr(arr.metadata.compressor, "location", "start") == "start":
                raw = raw[4:]  # numcodecs' CRC32 puts its 4 bytes first unless told otherwise
            whole = min(len(raw) // 8, stop - start)
            if len(raw) < per * 8:  # cut short: the values before the cut are as written
                got = np.frombuffer(raw[: whole * 8], dtype="<i8")
                prev = values[start - 1] if start else 0
                ok = np.concatenate([[prev], got])
                whole = int(np.argmin(np.diff(ok) >= 0)) if np.any(np.diff(ok) < 0) else whole
                values[start : start + whole] = got[:whole]  # only a plausible (monotone) prefix
                known[start : start + whole] = True
                why = f"cut short ({len(raw)} bytes)"
        lost = [i for i in range(start, stop) if not known[i]]
        # episode i also needs ends[i - 1], its start
        affected = sorted({*lost, *(i + 1 for i in lost if i + 1 < n)})
        damages.append(Damage("meta/episode_ends", file, why, affected))
    return values, known, damages


def episodes_in(ends: np.ndarray) -> EpisodesOf:
    """episodes_of(start, stop) for per-step rows, given cumulative episode ends."""

    def of(start: int, stop: int) -> list[int]:
        first = int(np.searchsorted(ends, start, side="right"))
        last = int(np.searchsorted(ends, stop - 1, side="right"))
        return list(range(first, min(last, len(ends) - 1) + 1))

    return of


def scan_rows(root: Path, group: zarr.Group, ends: np.ndarray, read: bool = True) -> list[Damage]:
    """Damage in data/ (rows of committed steps) and meta/ per-episode arrays (rows of episodes)."""
    n_ep, n_steps = len(ends), int(ends[-1]) if len(ends) else 0
    damages = []
    for key, arr in sorted(group["data"].arrays()):
        damages += scan_array(root, arr, n_steps, f"data/{key}", episodes_in(ends), read)
    for key, arr in sorted(group["meta"].arrays()):
        if key != "episode_ends":
            rows = min(n_ep, arr.shape[0])
            damages += scan_array(root, arr, rows, f"meta/{key}", lambda a, b: list(range(a, b)), read)
    return damages


@dataclass
class Report:
    """What `robot-rl verify` found."""

    path: Path
    n_episodes: int
    n_steps: int
    bytes: int
    unchecked: list[str]  # arrays without a checksum (written before checksums were stored)
    damages: list[Damage] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def damaged_episodes(self) -> list[int]:
        return sorted({e for d in self.damages for e in d.episodes})

    def text(self) -> str:
        head = (
            f"{self.path}: {self.n_episodes} episodes, {self.n_steps} steps, "
            f"{self.bytes / 2**20:.1f} MiB read in {self.seconds:.2f} s"
        )
        lines = [head]
        if self.unchecked:
            lines.append(
                f"no checksums in {len(self.unchecked)} arrays ({', '.join(self.unchecked)}): written before "
                "robot-rl stored them; checked for readability only (a deleted chunk reads as zeros)"
            )
        for d in self.damages:
            lines.append(f"DAMAGED {d.array}: {d.why} in {d.file}; episodes {_ranges(d.episodes)}")
        lines.append("ok" if not self.damages else f"damaged episodes: {_ranges(self.damaged_episodes)}")
        return "\n".join(lines)


def _store_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def scan(path: str | Path) -> Report:
    """Read every chunk of a store's recorded range; report damage without changing a byte."""
    path = Path(path)
    t0 = time.perf_counter()
    root = zarr.open_group(path, mode="r")
    for name in ("data", "meta"):
        if name not in root:
            raise ValueError(f"{path} is not an episode store: no '{name}' group")
    ends_arr = root["meta"]["episode_ends"]
    values, known, damages = read_ends(path, ends_arr)
    longest = max((a.shape[0] for _, a in root["data"].arrays()), default=0)
    ends = np.minimum(_usable_ends(values, known), longest)  # damage cannot send a scan past the data
    damages += scan_rows(path, root, ends)
    arrays = [(f"data/{k}", a) for k, a in root["data"].arrays()] + [
        (f"meta/{k}", a) for k, a in root["meta"].arrays()
    ]
    report = Report(
        path, len(values), int(ends[-1]) if len(ends) else 0, _store_bytes(path),
        sorted(name for name, a in arrays if not has_checksum(a)), damages,
    )  # fmt: skip
    report.seconds = time.perf_counter() - t0
    return report


def _usable_ends(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Episode ends with unknown rows filled from their neighbours (for mapping rows to episodes)."""
    ends = values.copy()
    for i in np.flatnonzero(~known):
        ends[i] = ends[i - 1] if i else 0
    return np.maximum.accumulate(ends) if len(ends) else ends


def drop_damaged(path: str | Path, report: Report | None = None) -> tuple[Path, list[int]]:
    """Set the damaged episodes aside: (the folder the original store now lives in, episodes dropped).

    The original store is renamed, never changed; a new store at `path` gets every other episode
    (steps, final observation, re-record flag, attributes), in order.
    """
    from robot_rl.data.episode_store import EpisodeStore  # the store builds on this module

    path = Path(path)
    report = report or scan(path)
    bad = set(report.damaged_episodes)
    if not report.damages:
        return path, []
    root = zarr.open_group(path, mode="r")
    values, known, _ = read_ends(path, root["meta"]["episode_ends"])
    tmp = path.with_name(f"{path.name}.partial-{os.getpid()}")
    out = EpisodeStore(tmp, mode="w", chunk_steps=_low_dim_chunk(root))
    out.attrs.update(dict(root.attrs))
    data, meta = dict(root["data"].arrays()), dict(root["meta"].arrays())
    for i in range(len(values)):
        if i in bad or not known[i] or (i and not known[i - 1]):
            continue
        start, stop = (int(values[i - 1]) if i else 0), int(values[i])
        steps = {k: a[start:stop] for k, a in data.items()}
        final = None
        if "has_final_obs" in meta and i < meta["has_final_obs"].shape[0] and bool(meta["has_final_obs"][i]):
            final = {k[len("final_") :]: a[i] for k, a in meta.items() if k.startswith("final_")}
        rerecorded = "rerecorded" in meta and i < meta["rerecorded"].shape[0] and bool(meta["rerecorded"][i])
        out.append_episode(steps, final, rerecorded)
    aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    os.rename(path, aside)
    os.rename(tmp, path)
    return aside, sorted(bad)


def _low_dim_chunk(root: zarr.Group) -> int | None:
    for _, arr in root["data"].arrays():
        if arr.ndim < 3:
            return int(arr.chunks[0])
    return None
