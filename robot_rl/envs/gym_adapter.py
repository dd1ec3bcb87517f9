"""Bring any registered gymnasium env to the project's observation and action format.

Box observations become {"state": float32[D]}. Dict observations, nested or not (LeRobot and
gym-hil envs: `pixels: {front, wrist}`, `agent_pos`, `environment_state`), are walked depth first
in the Dict's own key order (gymnasium sorts a Dict's keys): every uint8 (H, W, 3) entry becomes a
camera named by the last part of its path (`pixels.front` -> `front`; two entries with the same
last part are both named by their full path, `a_front` and `b_front`), and every other Box is
flattened into "state" in that order. Actions are rescaled to [-1, 1].

Seeding: the first reset without a seed uses the seed the wrapper was built with, and later
resets continue the env's own random stream (gymnasium's convention), so a run's seed fixes every
episode's start. A gymnasium env reports success when its info carries `success` or `is_success`;
one that never does (Hopper, HalfCheetah) is shown by its return instead (reports_success).
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

Path = tuple[str, ...]  # keys from the observation Dict's root to one entry


def _is_image(space: spaces.Space) -> bool:
    return (
        isinstance(space, spaces.Box)
        and space.dtype == np.uint8
        and len(space.shape) == 3
        and space.shape[-1] == 3
    )


def _leaves(space: spaces.Dict, prefix: Path = ()) -> list[tuple[Path, spaces.Space]]:
    """Every non-Dict entry of a (nested) Dict with its path, depth first in key order."""
    out: list[tuple[Path, spaces.Space]] = []
    for key, sub in space.spaces.items():
        if isinstance(sub, spaces.Dict):
            out += _leaves(sub, (*prefix, key))
        else:
            out.append(((*prefix, key), sub))
    return out


def _camera_names(paths: list[Path]) -> list[str]:
    """The last part of each path, or the whole path joined by '_' where last parts clash."""
    last = [p[-1] for p in paths]
    names = [p[-1] if last.count(p[-1]) == 1 else "_".join(p) for p in paths]
    if len(set(names)) != len(names):
        raise ValueError(f"camera names from the observation paths {paths} clash: rename the env's entries")
    return names


def _get(raw: Any, path: Path) -> Any:
    for key in path:
        raw = raw[key]
    return raw


def reports_success(env: gym.Env) -> bool:
    """Whether the env gives a success signal: the sim tasks and the robot always do; a
    gymnasium env once its info has carried `success` or `is_success`."""
    return bool(getattr(env, "reports_success", True))


class StandardObsWrapper(gym.Wrapper):
    """Observation -> {"state", "images"}; action Box -> [-1, 1]; info gains "success" and "t_obs".

    seed: the first reset without a seed uses it; later ones continue the env's stream.
    """

    def __init__(self, env: gym.Env, seed: int | None = None) -> None:
        super().__init__(env)
        if not isinstance(env.action_space, spaces.Box):
            raise TypeError(f"only Box action spaces are supported, got {env.action_space}")
        if not (np.all(np.isfinite(env.action_space.low)) and np.all(np.isfinite(env.action_space.high))):
            raise ValueError("the action space must be bounded to rescale it to [-1, 1]")
        self._act_low = env.action_space.low.astype(np.float64)
        self._act_high = env.action_space.high.astype(np.float64)
        self.action_space = spaces.Box(-1.0, 1.0, env.action_space.shape, np.float32, seed=seed)
        self._state_paths, self._image_paths = self._split(env.observation_space)
        self._camera_names = _camera_names(self._image_paths)
        self.observation_space = self._make_space(env.observation_space)
        self._next_seed = seed
        self.reports_success = False  # until the env's info carries success or is_success

    @staticmethod
    def _split(space: spaces.Space) -> tuple[list[Path], list[Path]]:
        if isinstance(space, spaces.Box):
            return [()], []
        if not isinstance(space, spaces.Dict):
            raise TypeError(f"only Box or Dict observation spaces are supported, got {type(space).__name__}")
        state, images = [], []
        for path, sub in _leaves(space):
            if _is_image(sub):
                images.append(path)
            elif isinstance(sub, spaces.Box):
                state.append(path)
            else:
                raise TypeError(
                    f"observation entry '{'.'.join(path)}' is {type(sub).__name__}; only Box entries "
                    "(in Dicts, nested or not) are supported: wrap the env to turn it into a Box"
                )
        if not state and not images:
            raise ValueError("the observation space is empty")
        return state, images

    def _make_space(self, space: spaces.Space) -> spaces.Dict:
        subs = [_get(space, p) for p in self._state_paths]
        dim = int(sum(np.prod(s.shape) for s in subs))
        out: dict[str, spaces.Space] = {"state": spaces.Box(-np.inf, np.inf, (dim,), np.float32)}
        if self._image_paths:
            cams = {n: _get(space, p) for n, p in zip(self._camera_names, self._image_paths, strict=True)}
            out["images"] = spaces.Dict(cams)
        return spaces.Dict(out)

    def _obs(self, raw: Any) -> dict[str, Any]:
        parts = [np.asarray(_get(raw, p), np.float32).ravel() for p in self._state_paths]
        obs: dict[str, Any] = {"state": np.concatenate(parts) if parts else np.zeros(0, np.float32)}
        if self._image_paths:
            cameras = zip(self._camera_names, self._image_paths, strict=True)
            obs["images"] = {name: np.asarray(_get(raw, p), np.uint8) for name, p in cameras}
        return obs

    def _info(self, info: dict[str, Any]) -> dict[str, Any]:
        info = dict(info)
        if "success" in info or "is_success" in info:
            self.reports_success = True
        info.setdefault("success", bool(info.get("is_success", False)))
        info.setdefault("t_obs", time.time())
        return info

    def reset(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        if kwargs.get("seed") is None and self._next_seed is not None:
            kwargs["seed"] = self._next_seed
        self._next_seed = None  # later resets continue the stream this seed started
        raw, info = self.env.reset(**kwargs)
        return self._obs(raw), self._info(info)

    def step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        a = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        scaled = self._act_low + (a + 1.0) * 0.5 * (self._act_high - self._act_low)
        raw, reward, terminated, truncated, info = self.env.step(scaled.astype(self.env.action_space.dtype))
        return self._obs(raw), float(reward), bool(terminated), bool(truncated), self._info(info)
