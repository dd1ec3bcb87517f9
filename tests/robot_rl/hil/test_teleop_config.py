"""The teleop config group: every option composes into its dataclass, and a bad value stops
start-up with a message naming it."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from drivers.teleop.gamepad import GamepadConfig
from drivers.teleop.keyboard import KeyboardConfig
from drivers.teleop.spacemouse import SpaceMouseConfig
from robot_rl.cli import CONFIG_DIR, to_train_config
from robot_rl.config import register_configs
from robot_rl.hil.sim_human import SimHumanConfig


def train_config(*overrides: str):
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return to_train_config(compose("train", overrides=list(overrides)))


@pytest.mark.parametrize(
    ("option", "config_cls"),
    [
        ("keyboard", KeyboardConfig),
        ("spacemouse", SpaceMouseConfig),
        ("gamepad", GamepadConfig),
        ("sim_human", SimHumanConfig),
    ],
)
def test_each_device_composes(option, config_cls):
    assert type(train_config(f"teleop={option}").teleop) is config_cls


def test_none_is_the_default():
    assert train_config().teleop is None
    assert train_config("teleop=none").teleop is None


def test_axes_and_buttons_from_the_command_line():
    cfg = train_config(
        "teleop=spacemouse", "teleop.axes=[-y,x,-z,ry,rx,-rz]", "teleop.buttons={left:success}"
    )
    assert cfg.teleop.axes == ["-y", "x", "-z", "ry", "rx", "-rz"]
    assert cfg.teleop.buttons == {"left": "success", "right": "gripper_open"}  # merged into the defaults


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["teleop=spacemouse", "teleop.axes=[w,x,z,rx,ry,rz]"], "unknown raw axis 'w'"),
        (["teleop=keyboard", "teleop.deadband=1.5"], "deadband"),
        (["teleop=sim_human", "teleop.takeover_prob=2"], "takeover_prob"),
    ],
)
def test_bad_values_stop_start_up(overrides, match):
    with pytest.raises(SystemExit, match=match):
        train_config(*overrides)
