"""The teleop registry: every registered config builds its device, by config and (hardware) by name."""

from __future__ import annotations

import pytest

from robot_rl.hil.devices import DEVICES, HARDWARE, make_device, make_hardware_device, teleop_configs
from sim.tasks import make_sim_env


@pytest.mark.parametrize("name", sorted(DEVICES))
def test_every_registered_config_builds_its_device(name: str) -> None:
    device_cls, config_cls = DEVICES[name]
    env = make_sim_env("pick_cube", privileged=True, seed=0)
    try:
        device = make_device(config_cls(), env, seed=0)  # building opens nothing: start() does
        assert type(device) is device_cls
    finally:
        env.close()


def test_the_config_group_lists_every_device() -> None:
    assert set(teleop_configs()) == set(DEVICES) >= set(HARDWARE)


def test_an_unknown_config_names_the_choices() -> None:
    with pytest.raises(TypeError, match="teleop= takes one of"):
        make_device(object(), None)  # type: ignore[arg-type]


def test_only_hardware_is_built_by_name() -> None:
    with pytest.raises(ValueError, match="must be one of"):
        make_hardware_device("sim_human")  # needs an env: the actor builds it, not a teleop node
