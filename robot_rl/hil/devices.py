"""The teleop seam's one registry: a device's name -> (device class, config class).

The `teleop=` config group (robot_rl/config.py), the actor's intervention wrapper and the teleop
node (robot_rl/ros/nodes/teleop_node.py) all build their devices from here, so a new device is one
line in DEVICES (docs/architecture.md, "How to add a teleop device").

    hardware   plugged into the machine that runs the actor or a teleop node (vendor libraries
               load at start(), so listing them here costs nothing)
    sim_human  the simulated person: a scripted expert that watches the policy (needs the env)
    ros        a teleop node on another machine, read over ROS 2
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
from omegaconf import OmegaConf

from drivers.teleop.base import TeleopDevice
from drivers.teleop.gamepad import Gamepad, GamepadConfig
from drivers.teleop.keyboard import Keyboard, KeyboardConfig
from drivers.teleop.spacemouse import SpaceMouse, SpaceMouseConfig
from robot_rl.hil.sim_human import SimHuman, SimHumanConfig
from robot_rl.ros.teleop_topics import RosTeleop, RosTeleopConfig

HARDWARE: dict[str, tuple[type, type]] = {
    "keyboard": (Keyboard, KeyboardConfig),
    "spacemouse": (SpaceMouse, SpaceMouseConfig),
    "gamepad": (Gamepad, GamepadConfig),
}
DEVICES: dict[str, tuple[type, type]] = {
    **HARDWARE,
    "sim_human": (SimHuman, SimHumanConfig),
    "ros": (RosTeleop, RosTeleopConfig),
}


def teleop_configs() -> dict[str, type]:
    """name -> config class, for hydra's `teleop` group (teleop=none is configs/teleop/none.yaml)."""
    return {name: config_cls for name, (_, config_cls) in DEVICES.items()}


def make_device(cfg: Any, env: gym.Env, seed: int = 0) -> TeleopDevice:
    """The device a teleop config object names (the actor's `teleop=`); env and seed are for the
    simulated person, which watches the env and draws its takeovers from the seed."""
    for device_cls, config_cls in DEVICES.values():
        if isinstance(cfg, config_cls):
            return device_cls(cfg, env, seed) if device_cls is SimHuman else device_cls(cfg)
    raise TypeError(f"unknown teleop config {type(cfg).__name__}; teleop= takes one of {sorted(DEVICES)}")


def make_hardware_device(name: str, config: Mapping[str, Any] | None = None) -> TeleopDevice:
    """The hardware device `name` with its config's keys set from config (deadband, scale, axes,
    buttons, ...), as a bringup yaml gives them; ValueError naming a wrong name, key or value."""
    if name not in HARDWARE:
        raise ValueError(f"teleop device must be one of {sorted(HARDWARE)}, got {name!r}")
    device_cls, config_cls = HARDWARE[name]
    try:
        cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(config_cls), dict(config or {})))
    except Exception as err:  # OmegaConf's errors and the config's own ValueErrors
        raise ValueError(f"teleop config for {name}: {err}") from err
    return device_cls(cfg)
