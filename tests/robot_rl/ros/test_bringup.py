"""Bringup config: the yaml files load into SafetyLimits under `safety`, whose box defaults to the
task contract's; wrong keys and values fail naming them; each robot name has its arm driver; a
`teleop:` section starts a teleop node (over zenoh here) and needs no twin scene."""

from __future__ import annotations

import dataclasses
import importlib
import socket
from pathlib import Path

import numpy as np
import pytest
from omegaconf.errors import OmegaConfBaseException
from teleop_doubles import SyntheticDevice

from drivers.safety import SafetyLimits
from drivers.teleop.base import Buttons, TeleopReading
from robot_rl.ros import bringup
from robot_rl.ros.bringup import ARM_DRIVERS, ROBOTS, Bringup, BringupConfig, default_safety, load_config
from robot_rl.ros.connect import RosConfig
from robot_rl.ros.teleop_topics import RosTeleop, RosTeleopConfig
from sim.task_spec import WORKSPACE_HIGH, WORKSPACE_LOW

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "bringup"


def test_the_default_box_is_the_task_contracts() -> None:
    for safety in (BringupConfig().safety, load_config(CONFIGS / "twin.yaml").safety):
        assert isinstance(safety, SafetyLimits)
        assert (safety.workspace_low, safety.workspace_high) == (WORKSPACE_LOW, WORKSPACE_HIGH)
    assert load_config(CONFIGS / "twin_cameras.yaml").safety == default_safety()


def test_a_yaml_and_overrides_set_the_limits() -> None:
    cfg = load_config(CONFIGS / "ur5e_realsense.yaml", ["safety.max_rot_step_rad=0.2"])
    assert cfg.safety.workspace_low == (0.25, -0.3, 0.02)
    assert cfg.safety.workspace_high == (0.65, 0.3, 0.4)
    assert (cfg.safety.max_step_m, cfg.safety.max_force_n, cfg.safety.max_rot_step_rad) == (0.03, 25.0, 0.2)
    assert cfg.safety.max_command_age_s == default_safety().max_command_age_s


@pytest.mark.parametrize(
    ("override", "error", "match"),
    [
        ("safety.max_stepm=0.1", OmegaConfBaseException, "max_stepm"),
        ("safety.max_step_m=fast", OmegaConfBaseException, "fast"),
        ("safety.max_step_m=-0.1", ValueError, "max_step_m"),
        ("safety.workspace_low=[0.25,-0.3]", ValueError, "workspace_low"),
        ("safety.workspace_low=[0.9,-0.3,0.0]", ValueError, "workspace_low"),
        ("robot=kuka", ValueError, "robot"),
    ],
)
def test_a_wrong_key_or_value_is_named(override: str, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        load_config(CONFIGS / "twin.yaml", [override])


def test_each_robot_has_its_arm_driver() -> None:
    assert ROBOTS == ("twin", "ur", "franka", "xarm")
    for module_name, arm_class, config_class in ARM_DRIVERS.values():
        module = importlib.import_module(module_name)  # no vendor library needed to import
        assert callable(getattr(module, arm_class))
        assert dataclasses.is_dataclass(getattr(module, config_class))


def test_teleop_configs_load_and_a_wrong_device_is_named() -> None:
    assert load_config(CONFIGS / "twin.yaml").teleop is None  # no section: no teleop node
    for name, device in (("teleop_keyboard.yaml", "keyboard"), ("teleop_spacemouse.yaml", "spacemouse")):
        cfg = load_config(CONFIGS / name)
        assert cfg.teleop is not None and cfg.teleop.device == device and cfg.nodes == ["teleop"]
        assert cfg.ros.listen == ["tcp/0.0.0.0:7447"]  # the actor's machine connects here
    with pytest.raises(ValueError, match=r"teleop\.device must be one of"):
        load_config(CONFIGS / "teleop_keyboard.yaml", ["teleop.device=joystick"])
    with pytest.raises(ValueError, match="nodes \\['teleop'\\] are not in this bringup"):
        load_config(CONFIGS / "twin.yaml", ["nodes=[teleop]"])


def test_a_teleop_section_publishes_the_device_to_a_reader_on_another_session(monkeypatch) -> None:
    """Bringup's teleop node over zenoh on loopback, read by RosTeleop from its own session as an
    actor on another machine would; a teleop-only bringup builds no twin scene."""
    pytest.importorskip("zenoh", reason="eclipse-zenoh not installed (pip install eclipse-zenoh)")
    person = TeleopReading(np.array([0.0, 0.5, 0, 0, 0, 0]), -1.0, Buttons(intervene=True), True, 0.0)
    device = SyntheticDevice(person)
    monkeypatch.setattr(bringup, "make_hardware_device", lambda name, config: device)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = load_config(CONFIGS / "teleop_keyboard.yaml", [f"ros.listen=[tcp/127.0.0.1:{port}]"])
    node = Bringup(cfg)
    reader = RosTeleop(
        RosTeleopConfig(ros=RosConfig(connect=[f"tcp/127.0.0.1:{port}"], listen=["tcp/127.0.0.1:0"]))
    )
    try:
        assert node.scene is None and list(node.nodes) == ["teleop"] and device.starts == 1
        node.start()
        reader.start()
        reading = reader.poll()
        np.testing.assert_array_equal(reading.twist, person.twist)
        assert (reading.gripper, reading.buttons, reading.active) == (-1.0, person.buttons, True)
    finally:
        reader.stop()
        node.close()
    assert device.stops == 1  # closed with the bringup (a keyboard's terminal is restored)
