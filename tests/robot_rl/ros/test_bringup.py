"""Bringup config: the yaml files load into SafetyLimits under `safety`, whose box defaults to the
task contract's; wrong keys and values fail naming them; each robot name has its arm driver."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import pytest
from omegaconf.errors import OmegaConfBaseException

from drivers.safety import SafetyLimits
from robot_rl.ros.bringup import ARM_DRIVERS, ROBOTS, BringupConfig, default_safety, load_config
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
