"""Zarr append throughput of EpisodeStore for a 2-camera robot.

Episodes of 100 steps with two 128x128 RGB cameras (uint8), a 30-float state and every
STEP_KEY are appended to a fresh store in a temp dir; the figure is compared with what a robot
at 30 Hz produces (30 steps/s). Images are smooth gradients with moving blobs and sensor noise, since
constant or uniformly random frames would compress unrealistically well or badly.

    python -m benchmarks.zarr_append [--episodes 30] [--steps 100]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import write_results
from robot_rl.data.episode_store import EpisodeStore

ROBOT_HZ = 30.0
CAMERAS = ("wrist", "front")
HW = 128
STATE_DIM = 30
ACTION_DIM = 7


def camera_frames(rng: np.random.Generator, t: int, phase: float) -> np.ndarray:
    """uint8[T, H, W, 3]: lit gradient scene, a blob moving across it, Gaussian sensor noise."""
    yy, xx = np.mgrid[0:HW, 0:HW].astype(np.float32) / HW
    base = np.stack([180 * xx + 40, 120 * yy + 60, 90 * (xx + yy) + 30], -1)
    frames = np.empty((t, HW, HW, 3), np.uint8)
    for i in range(t):
        cx, cy = 0.5 + 0.3 * np.sin(phase + i / 15), 0.5 + 0.3 * np.cos(phase + i / 20)
        blob = 80 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.01)[..., None]
        noisy = base + blob + rng.normal(0, 3, (HW, HW, 3))
        frames[i] = np.clip(noisy, 0, 255).astype(np.uint8)
    return frames


def make_episode(rng: np.random.Generator, t: int, phase: float) -> tuple[dict, dict]:
    """(steps, final_obs) in the store's format."""
    obs = {"state": rng.normal(size=(t + 1, STATE_DIM)).astype(np.float32)}
    for cam in CAMERAS:
        obs[f"image_{cam}"] = camera_frames(rng, t + 1, phase + len(cam))
    steps = {k: v[:t] for k, v in obs.items()}
    steps.update(
        action=rng.uniform(-1, 1, (t, ACTION_DIM)).astype(np.float32),
        policy_action=rng.uniform(-1, 1, (t, ACTION_DIM)).astype(np.float32),
        reward=np.zeros(t, np.float32),
        terminated=np.zeros(t, bool),
        truncated=np.zeros(t, bool),
        intervened=rng.random(t) < 0.1,
        policy_version=np.full(t, 3, np.int64),
        t_obs=np.arange(t) / ROBOT_HZ,
    )
    return steps, {k: v[t] for k, v in obs.items()}


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def run(n_episodes: int, t: int) -> dict:
    rng = np.random.default_rng(0)
    # pre-generate a few distinct episodes so image synthesis is not timed
    pool = [make_episode(rng, t, phase=float(k)) for k in range(4)]
    raw_step_bytes = sum(v[0].nbytes for v in pool[0][0].values())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.zarr"
        store = EpisodeStore(path, mode="w")
        times = []
        for e in range(n_episodes):
            steps, final = pool[e % len(pool)]
            start = time.perf_counter()
            store.append_episode(steps, final)
            times.append(time.perf_counter() - start)
        disk = dir_bytes(path)
    total = float(np.sum(times))
    n_steps = n_episodes * t
    steps_per_s = n_steps / total
    return {
        "episodes": n_episodes,
        "steps_per_episode": t,
        "raw_bytes_per_step": raw_step_bytes,
        "steps_per_s": steps_per_s,
        "raw_mb_per_s": steps_per_s * raw_step_bytes / 1e6,
        "disk_mb_per_s": disk / total / 1e6,
        "compression_ratio": n_steps * raw_step_bytes / disk,
        "episode_ms_median": 1e3 * float(np.median(times)),
        "episode_ms_p95": 1e3 * float(np.percentile(times, 95)),
        "x_realtime_30hz": steps_per_s / ROBOT_HZ,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    r = run(args.episodes, args.steps)
    cams = f"{len(CAMERAS)} x {HW}x{HW} RGB uint8"
    markdown = (
        "## zarr_append: EpisodeStore.append_episode throughput\n\n"
        f"{r['episodes']} episodes of {r['steps_per_episode']} steps; per step {cams}, "
        f"state float32[{STATE_DIM}], all STEP_KEYS ({r['raw_bytes_per_step'] / 1e3:.1f} kB raw). "
        "Blosc zstd level 1, images chunked per 5 frames, zarr format 2, local disk.\n\n"
        "| steps/s | raw MB/s | on-disk MB/s | compression | episode ms (median / p95) | x 30 Hz robot |\n"
        "|---|---|---|---|---|---|\n"
        f"| {r['steps_per_s']:.0f} | {r['raw_mb_per_s']:.1f} | {r['disk_mb_per_s']:.1f} | "
        f"{r['compression_ratio']:.2f}x | {r['episode_ms_median']:.0f} / {r['episode_ms_p95']:.0f} | "
        f"{r['x_realtime_30hz']:.0f}x |"
    )
    print(markdown)
    write_results("zarr_append", r, markdown, command="python -m benchmarks.zarr_append")


if __name__ == "__main__":
    main()
