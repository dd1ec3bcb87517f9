"""What checksummed chunks cost: EpisodeStore append and read throughput with and without, and verify.

The same episodes as benchmarks/zarr_append.py (2 x 128x128 RGB cameras, 30-float state, every
STEP_KEY) are appended to a store whose chunks carry numcodecs' CRC32 (what EpisodeStore writes)
and to one without (the codecs robot-rl wrote before), alternating rounds in one run so both see
the same disk and CPU; then every episode is read back, and `robot-rl verify`'s scan reads the
checksummed store (its time per GB on disk).

    python -m benchmarks.store_integrity [--episodes 20] [--steps 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from unittest import mock

import numpy as np

from benchmarks.common import write_results
from benchmarks.zarr_append import CAMERAS, HW, dir_bytes, make_episode
from robot_rl.data import episode_store
from robot_rl.data.episode_store import EpisodeStore
from robot_rl.data.integrity import scan


def _without_checksums() -> mock._patch:
    """EpisodeStore writing blosc-only chunks, as stores were written before checksums."""
    return mock.patch.object(episode_store, "checksummed_codecs", lambda c: {"compressors": c})


def _one_round(path: Path, pool: list, n_episodes: int, checksums: bool) -> dict[str, float]:
    with nullcontext() if checksums else _without_checksums():
        store = EpisodeStore(path, mode="w")
        t0 = time.perf_counter()
        for e in range(n_episodes):
            store.append_episode(*pool[e % len(pool)])
        append_s = time.perf_counter() - t0
    reader = EpisodeStore(path, mode="r")
    t0 = time.perf_counter()
    for i in range(reader.n_episodes):
        reader.episode(i)
        reader.final_obs(i)
    read_s = time.perf_counter() - t0
    out = {"append_s": append_s, "read_s": read_s, "disk_bytes": dir_bytes(path)}
    t0 = time.perf_counter()
    report = scan(path)
    out["verify_s"] = time.perf_counter() - t0
    assert not report.damages  # a benchmark on a damaged store would measure nothing
    return out


def run(n_episodes: int, t: int, rounds: int) -> dict:
    rng = np.random.default_rng(0)
    pool = [make_episode(rng, t, phase=float(k)) for k in range(4)]
    raw_step_bytes = sum(v[0].nbytes for v in pool[0][0].values())
    raw_mb = n_episodes * t * raw_step_bytes / 1e6
    results: dict[str, list[dict[str, float]]] = {"crc32": [], "none": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for name in ("none", "crc32") if r % 2 == 0 else ("crc32", "none"):
                path = Path(tmp) / f"{name}-{r}.zarr"
                results[name].append(_one_round(path, pool, n_episodes, checksums=name == "crc32"))
    summary = {}
    for name, rows in results.items():
        append_s = float(np.median([x["append_s"] for x in rows]))
        read_s = float(np.median([x["read_s"] for x in rows]))
        verify_s = float(np.median([x["verify_s"] for x in rows]))
        disk_gb = rows[0]["disk_bytes"] / 1e9
        summary[name] = {
            "append_raw_mb_per_s": raw_mb / append_s,
            "read_raw_mb_per_s": raw_mb / read_s,
            "verify_s_per_gb": verify_s / disk_gb,
            "disk_mb": disk_gb * 1e3,
        }
    return {
        "episodes": n_episodes,
        "steps_per_episode": t,
        "rounds": rounds,
        "raw_mb": raw_mb,
        "variants": summary,
        "append_ratio": summary["crc32"]["append_raw_mb_per_s"] / summary["none"]["append_raw_mb_per_s"],
        "read_ratio": summary["crc32"]["read_raw_mb_per_s"] / summary["none"]["read_raw_mb_per_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="JSON only, RESULTS.md untouched")
    args = parser.parse_args()
    r = run(args.episodes, args.steps, args.rounds)
    v = r["variants"]
    rows = "\n".join(
        f"| {name} | {x['append_raw_mb_per_s']:.1f} | {x['read_raw_mb_per_s']:.1f} | {x['disk_mb']:.1f} | "
        f"{x['verify_s_per_gb']:.1f} |"
        for name, x in (("CRC32 per chunk (now)", v["crc32"]), ("none (before)", v["none"]))
    )
    markdown = (
        "## store_integrity: what checksummed chunks cost\n\n"
        f"{r['episodes']} episodes of {r['steps_per_episode']} steps ({r['raw_mb']:.0f} MB raw; per step "
        f"{len(CAMERAS)} x {HW}x{HW} RGB uint8, state, all STEP_KEYS), median of {r['rounds']} rounds "
        "alternating the variants. Verify: `robot-rl verify`'s scan, every chunk read and decoded "
        "(without checksums it can only check that chunks decode).\n\n"
        "| chunks | append raw MB/s | read raw MB/s | on disk MB | verify s/GB on disk |\n"
        "|---|---|---|---|---|\n"
        f"{rows}\n\n"
        f"With checksums: append x{r['append_ratio']:.2f}, read x{r['read_ratio']:.2f} the throughput "
        "without."
    )
    print(markdown)
    command = "python -m benchmarks.store_integrity"
    write_results("store_integrity", r, markdown, command=command, section=not args.smoke)


if __name__ == "__main__":
    main()
