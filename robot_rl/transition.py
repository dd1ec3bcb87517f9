"""The observation and transition formats shared by envs, data, agents and runtime.

One observation format everywhere (docs/architecture.md):
    {"state": float32[D], "images": {camera: uint8[H, W, 3]}}
"images" is absent when the env has no cameras. Actions are float32 in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

Obs = dict[str, Any]  # {"state": np.ndarray, "images": {name: np.ndarray}}

# Keys of one step in an episode as the store and the transport carry it. Observation keys are
# "state" and "image_<camera>"; the observation after the last step is kept once per episode.
STEP_KEYS = (
    "action",  # executed action, float32[A] (the teleop's when intervened)
    "policy_action",  # what the policy proposed, float32[A]
    "reward",  # float32
    "terminated",  # bool
    "truncated",  # bool
    "intervened",  # bool: a person acted this step
    "policy_version",  # int64: weights version the actor used
    "t_obs",  # float64: wall time the observation was taken
)
IMAGE_PREFIX = "image_"


def obs_to_flat(obs: Obs) -> dict[str, np.ndarray]:
    """{"state", "images": {cam}} -> {"state", "image_<cam>"} (store / transport form)."""
    flat = {"state": np.asarray(obs["state"], dtype=np.float32)}
    for cam, img in obs.get("images", {}).items():
        flat[IMAGE_PREFIX + cam] = np.asarray(img, dtype=np.uint8)
    return flat


def flat_to_obs(flat: Mapping[str, Any]) -> Obs:
    """Inverse of obs_to_flat; works on single frames and on batches alike."""
    obs: Obs = {"state": flat["state"]}
    images = {k[len(IMAGE_PREFIX) :]: v for k, v in flat.items() if k.startswith(IMAGE_PREFIX)}
    if images:
        obs["images"] = images
    return obs


@dataclass
class Batch:
    """A batch of (n-step) transitions for the learner.

    obs / next_obs: {"state": float32[B, D], "images": {cam: uint8[B, H, W, 3]}}
    action: float32[B, A] executed action
    reward: float32[B] discounted n-step return sum_{k<n} gamma^k r_{t+k}
    discount: float32[B] gamma^n, or 0 where the episode terminated within the n steps
    demo: bool[B], True where the row came from the demo buffer; None when the batch does not
        say (a single buffer's sample)
    """

    obs: Obs
    action: Any
    reward: Any
    next_obs: Obs
    discount: Any
    demo: Any = None

    def to_torch(self, device: torch.device | str = "cpu") -> Batch:
        fields = (self.obs, self.action, self.reward, self.next_obs, self.discount)
        demo = None if self.demo is None else tensors_on(self.demo, device)
        return Batch(*(tensors_on(x, device) for x in fields), demo=demo)

    def __len__(self) -> int:
        return int(self.action.shape[0])


def tensors_on(x: Any, device: torch.device | str) -> Any:
    """An array, or a (nested) dict of arrays, as tensors on `device` (batches' to_torch)."""
    if isinstance(x, dict):
        return {k: tensors_on(v, device) for k, v in x.items()}
    return torch.as_tensor(x).to(device, non_blocking=True)
