"""Labelled frames for the success classifier: from sim rollouts or from recorded episodes.

A frame is one observation's images, {camera: uint8 [H, W, 3]}, with a label (success now or
not) and the episode it came from; the held-out split is drawn by episode, so frames of one
episode (near copies of each other) never sit on both sides of it.

From the sim (`collect_sim_frames`): the label is the task's own success check after every step.
Each episode runs the task's scripted expert for the env's full episode length, past its success,
in one of three ways, so the frames hold success, failure and near-success:
    hold     the expert (with a little action noise) reaches success and holds it: mostly success
             frames, and the approach just before it (the hardest negatives)
    let_go   the expert reaches success, holds it a few ticks, then opens the gripper and moves at
             random: success frames, then the scene right after it is lost
    wander   the expert mixed with random actions: mostly failure, some success
From an episode store (`frames_from_store`): a step whose reward is 1 (the sparse success
reward, or a person's success key during teleop) labels the observation after it as success,
every other step's next observation as failure. Re-recorded episodes are skipped.

Frames files (`save_frames` / `load_frames`) are .npz archives: image_<camera> [N, H, W, 3]
uint8, label bool [N], episode int64 [N]; written atomically, read without pickle.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robot_rl.transition import IMAGE_PREFIX

MODES = ("hold", "let_go", "wander")


@dataclass
class Frames:
    """Labelled frames: images {camera: uint8 [N, H, W, 3]}, labels bool [N], episodes int64 [N]."""

    images: dict[str, np.ndarray]
    labels: np.ndarray
    episodes: np.ndarray

    def __post_init__(self) -> None:
        if not self.images:
            raise ValueError("frames need at least one camera")
        self.labels = np.asarray(self.labels, dtype=bool)
        self.episodes = np.asarray(self.episodes, dtype=np.int64)
        n = len(self.labels)
        for cam, frames in self.images.items():
            if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3 or len(frames) != n:
                raise ValueError(
                    f"camera {cam!r}: frames must be uint8 [N={n}, H, W, 3], got {frames.dtype} "
                    f"{frames.shape}"
                )
        if len(self.episodes) != n:
            raise ValueError(f"{len(self.episodes)} episode ids for {n} frames")
        sizes = {f.shape[1:3] for f in self.images.values()}
        if len(sizes) > 1:
            raise ValueError(f"every camera's frames must have one size, got {sorted(sizes)}")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def cameras(self) -> list[str]:
        return sorted(self.images)

    @property
    def image_size(self) -> tuple[int, int]:
        h, w = next(iter(self.images.values())).shape[1:3]
        return int(h), int(w)

    def subset(self, index: np.ndarray) -> Frames:
        return Frames({c: f[index] for c, f in self.images.items()}, self.labels[index], self.episodes[index])

    def summary(self) -> str:
        n_pos = int(self.labels.sum())
        h, w = self.image_size
        return (
            f"{len(self)} frames of {self.cameras} at {w}x{h} from {len(np.unique(self.episodes))} "
            f"episodes: {n_pos} success, {len(self) - n_pos} failure"
        )


def concat(parts: Sequence[Frames]) -> Frames:
    """One set of several; episode ids are renumbered so each part's stay its own."""
    if not parts:
        raise ValueError("no frames to join")
    cameras = parts[0].cameras
    for part in parts[1:]:
        if part.cameras != cameras or part.image_size != parts[0].image_size:
            raise ValueError(
                f"frames of cameras {part.cameras} at {part.image_size} cannot join frames of "
                f"{cameras} at {parts[0].image_size}"
            )
    offset, episodes = 0, []
    for part in parts:
        _, ids = np.unique(part.episodes, return_inverse=True)
        episodes.append(ids + offset)
        offset += int(ids.max()) + 1 if len(ids) else 0
    return Frames(
        {c: np.concatenate([p.images[c] for p in parts]) for c in cameras},
        np.concatenate([p.labels for p in parts]),
        np.concatenate(episodes),
    )


def split_by_episode(frames: Frames, held_out: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame indices (train, held_out): a `held_out` fraction of the episodes, drawn by seed."""
    if not 0.0 < held_out < 1.0:
        raise ValueError(f"the held-out fraction must be in (0, 1), got {held_out}")
    ids = np.unique(frames.episodes)
    if len(ids) < 2:
        raise ValueError(f"a held-out split needs frames of at least 2 episodes, got {len(ids)}")
    n_out = min(len(ids) - 1, max(1, round(held_out * len(ids))))
    out_ids = np.random.default_rng(seed).choice(ids, n_out, replace=False)
    is_out = np.isin(frames.episodes, out_ids)
    return np.flatnonzero(~is_out), np.flatnonzero(is_out)


def _episode_policy(
    mode: str, expert: Callable, shape: tuple[int, ...], rng: np.random.Generator
) -> Callable:
    """act(obs, success): the action of an episode in `mode` (module docstring), given whether
    the task was achieved after the last step."""
    hold_for = int(rng.integers(1, 6))
    held = 0

    def random_action(gripper: float | None = None) -> np.ndarray:
        action = rng.uniform(-1.0, 1.0, shape).astype(np.float32)
        if gripper is not None:
            action[-1] = gripper
        return action

    def act(obs: object, success: bool) -> np.ndarray:
        nonlocal held
        if mode == "wander" and rng.random() < 0.5:
            return random_action()
        if mode == "let_go":
            held += success or held > 0
            if held > hold_for:
                return random_action(gripper=-1.0)  # open: the object is let go
        action = np.asarray(expert(obs), np.float32)
        action[:3] += rng.normal(0.0, 0.1, 3).astype(np.float32)
        return np.clip(action, -1.0, 1.0)

    return act


def collect_sim_frames(
    task: str,
    cameras: Sequence[str],
    image_size: tuple[int, int],
    episodes: int,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> Frames:
    """Frames of `episodes` sim episodes of `task`, labelled with the task's own success check."""
    from sim.experts import expert_for
    from sim.tasks import make_sim_env

    if episodes < 2:
        raise ValueError(f"collect at least 2 episodes (a held-out split needs them), got {episodes}")
    env = make_sim_env(task, cameras=tuple(cameras), image_size=tuple(image_size), privileged=False)
    expert = expert_for(task)(env)
    rng = np.random.default_rng(seed)
    images: dict[str, list[np.ndarray]] = {c: [] for c in cameras}
    labels: list[bool] = []
    ids: list[int] = []
    try:
        for ep in range(episodes):
            obs, _ = env.reset(seed=seed + ep)
            expert.reset()
            policy = _episode_policy(MODES[ep % len(MODES)], expert, env.action_space.shape, rng)
            success = False
            # the full episode length, past the success that would end it: success frames too
            for _ in range(env.unwrapped.max_episode_steps):
                obs, _, _, _, info = env.step(policy(obs, success))
                success = bool(info["success"])
                for cam in cameras:
                    images[cam].append(obs["images"][cam])
                labels.append(success)
                ids.append(ep)
            if (ep + 1) % 10 == 0 or ep + 1 == episodes:
                log(f"collect: {ep + 1}/{episodes} episodes, {len(labels)} frames, {sum(labels)} success")
    finally:
        env.close()
    return Frames({c: np.stack(v) for c, v in images.items()}, np.array(labels), np.array(ids))


def frames_from_store(path: str | Path, cameras: Sequence[str] | None = None) -> Frames:
    """Labelled frames of an episode store's cameras (all of them when None), from its rewards."""
    from robot_rl.data.episode_store import EpisodeStore

    store = EpisodeStore(path, mode="r")
    keys = store.keys
    have = sorted(k[len(IMAGE_PREFIX) :] for k in keys if k.startswith(IMAGE_PREFIX))
    cameras = sorted(cameras) if cameras else have
    missing = [c for c in cameras if c not in have]
    if not cameras or missing:
        raise ValueError(f"episode store {path} has cameras {have}; frames need {missing or 'one'}")
    if "reward" not in keys:
        raise ValueError(f"episode store {path} has no 'reward' to label its frames with")
    images: dict[str, list[np.ndarray]] = {c: [] for c in cameras}
    labels, ids = [], []
    for i in range(store.n_episodes):
        if store.rerecorded(i):
            continue
        steps, final = store.episode(i), store.final_obs(i)
        n = len(steps["reward"])
        # the frame after step t is steps[t + 1]'s observation, or the episode's final one
        after = n if final is not None else n - 1
        for cam in cameras:
            key = IMAGE_PREFIX + cam
            seen = steps[key][1:]
            images[cam].append(np.concatenate([seen, final[key][None]]) if final is not None else seen)
        labels.append(steps["reward"][:after] > 0.5)
        ids.append(np.full(after, i))
    if not labels or not sum(len(x) for x in labels):
        raise ValueError(f"episode store {path} holds no labelled frames")
    return Frames(
        {c: np.concatenate(v) for c, v in images.items()}, np.concatenate(labels), np.concatenate(ids)
    )


def save_frames(path: str | Path, frames: Frames) -> Path:
    """Write frames as a compressed .npz, atomically."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"a frames file ends in .npz, got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.npz")
    arrays = {IMAGE_PREFIX + c: f for c, f in frames.images.items()}
    np.savez_compressed(tmp, label=frames.labels, episode=frames.episodes, **arrays)
    os.replace(tmp, path)
    return path


def load_frames(path: str | Path) -> Frames:
    """Frames from a file save_frames wrote, or from an episode store (a folder)."""
    path = Path(path)
    if path.is_dir():
        return frames_from_store(path)
    if not path.is_file():
        raise ValueError(
            f"no frames at {path}: give a frames .npz (robot-rl reward collect) or an episode store"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as err:  # a truncated or foreign file
        raise ValueError(f"frames file {path} could not be read ({type(err).__name__}: {err})") from err
    images = {k[len(IMAGE_PREFIX) :]: v for k, v in arrays.items() if k.startswith(IMAGE_PREFIX)}
    if "label" not in arrays or "episode" not in arrays or not images:
        raise ValueError(f"{path} is not a frames file: it needs label, episode and image_<camera> arrays")
    return Frames(images, arrays["label"], arrays["episode"])
