"""Every driver config must load as a hydra structured config (the camera and robot seams
instantiate drivers from them), keeping its defaults, and reject bad values when instantiated."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from drivers.franka import FrankaConfig
from drivers.realsense import RealSenseConfig
from drivers.ur import URConfig
from drivers.xarm import XArmConfig
from sim.sim_arm import SimArmConfig
from sim.sim_camera import SimCameraConfig

CONFIGS = [SimArmConfig, SimCameraConfig, RealSenseConfig, URConfig, FrankaConfig, XArmConfig]


@pytest.mark.parametrize("config_class", CONFIGS, ids=lambda c: c.__name__)
def test_driver_configs_are_hydra_structured_configs(config_class: type) -> None:
    loaded = OmegaConf.to_object(OmegaConf.structured(config_class))
    assert loaded == config_class()


def test_a_wrong_value_fails_when_the_config_is_built() -> None:
    with pytest.raises(ValueError, match="servo_gain"):
        OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(URConfig), {"servo_gain": 5000.0}))
