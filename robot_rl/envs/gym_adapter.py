"""Bring any registered gymnasium env to the project's observation and action format.

Box observations become {"state": float32[D]}; Dict observations keep uint8 (H, W, 3) entries as
images and flatten every other Box into "state". Actions are rescaled to [-1, 1].
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


def _is_image(space: spaces.Space) -> bool:
    return (
        isinstance(space, spaces.Box)
        and space.dtype == np.uint8
        and len(space.shape) == 3
        and space.shape[-1] == 3
    )


class StandardObsWrapper(gym.Wrapper):
    """Observation -> {"state", "images"}; action Box -> [-1, 1]; info gains "success" and "t_obs"."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        if not isinstance(env.action_space, spaces.Box):
            raise TypeError(f"only Box action spaces are supported, got {env.action_space}")
        if not (np.all(np.isfinite(env.action_space.low)) and np.all(np.isfinite(env.action_space.high))):
            raise ValueError("the action space must be bounded to rescale it to [-1, 1]")
        self._act_low = env.action_space.low.astype(np.float64)
        self._act_high = env.action_space.high.astype(np.float64)
        self.action_space = spaces.Box(-1.0, 1.0, env.action_space.shape, np.float32)
        self._state_keys, self._image_keys = self._split(env.observation_space)
        self.observation_space = self._make_space(env.observation_space)

    @staticmethod
    def _split(space: spaces.Space) -> tuple[list[str], list[str]]:
        if isinstance(space, spaces.Box):
            return [""], []
        if not isinstance(space, spaces.Dict):
            raise TypeError(f"only Box or Dict observation spaces are supported, got {type(space).__name__}")
        state, images = [], []
        for key, sub in space.spaces.items():
            if _is_image(sub):
                images.append(key)
            elif isinstance(sub, spaces.Box):
                state.append(key)
            else:
                raise TypeError(
                    f"observation entry '{key}' is {type(sub).__name__}; only Box entries are supported"
                )
        if not state and not images:
            raise ValueError("the observation space is empty")
        return state, images

    def _make_space(self, space: spaces.Space) -> spaces.Dict:
        subs = [space] if isinstance(space, spaces.Box) else [space[k] for k in self._state_keys]
        dim = int(sum(np.prod(s.shape) for s in subs))
        out: dict[str, spaces.Space] = {"state": spaces.Box(-np.inf, np.inf, (dim,), np.float32)}
        if self._image_keys:
            out["images"] = spaces.Dict({k: space[k] for k in self._image_keys})
        return spaces.Dict(out)

    def _obs(self, raw: Any) -> dict[str, Any]:
        if self._state_keys == [""]:
            return {"state": np.asarray(raw, np.float32).ravel()}
        parts = [np.asarray(raw[k], np.float32).ravel() for k in self._state_keys]
        obs: dict[str, Any] = {"state": np.concatenate(parts) if parts else np.zeros(0, np.float32)}
        if self._image_keys:
            obs["images"] = {k: np.asarray(raw[k], np.uint8) for k in self._image_keys}
        return obs

    def _info(self, info: dict[str, Any]) -> dict[str, Any]:
        info = dict(info)
        info.setdefault("success", bool(info.get("is_success", False)))
        info.setdefault("t_obs", time.time())
        return info

    def reset(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        raw, info = self.env.reset(**kwargs)
        return self._obs(raw), self._info(info)

    def step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        a = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        scaled = self._act_low + (a + 1.0) * 0.5 * (self._act_high - self._act_low)
        raw, reward, terminated, truncated, info = self.env.step(scaled.astype(self.env.action_space.dtype))
        return self._obs(raw), float(reward), bool(terminated), bool(truncated), self._info(info)
