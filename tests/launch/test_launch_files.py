"""The ROS 2 launch files build the right bringup processes.

ROS's `launch` package comes with a ROS 2 install, not from PyPI, so where it is missing the
launch files are loaded against small stand-ins that record what they were given; with ROS 2
sourced, the real package is used.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


class _Recorded:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs


def _stand_in_launch(monkeypatch: pytest.MonkeyPatch) -> None:
    launch = types.ModuleType("launch")
    actions = types.ModuleType("launch.actions")
    launch.LaunchDescription = type("LaunchDescription", (_Recorded,), {})
    for name in ("DeclareLaunchArgument", "ExecuteProcess", "OpaqueFunction"):
        setattr(actions, name, type(name, (_Recorded,), {}))
    launch.actions = actions
    monkeypatch.setitem(sys.modules, "launch", launch)
    monkeypatch.setitem(sys.modules, "launch.actions", actions)


def _load(name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name.replace(".", "_"), REPO / "launch" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _commands(launch_file: str, config: str, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    _stand_in_launch(monkeypatch)
    description = _load(launch_file).generate_launch_description()
    declare, opaque = description.args[0]
    assert declare.args[0] == "config"
    context = types.SimpleNamespace(launch_configurations={"config": config})
    return [process.kwargs["cmd"] for process in opaque.kwargs["function"](context)]


def test_real_launch_starts_the_arm_and_each_camera_in_its_own_rclpy_process(monkeypatch) -> None:
    cmds = _commands("real.launch.py", str(REPO / "configs/bringup/ur5e_realsense.yaml"), monkeypatch)
    assert [c[-1] for c in cmds] == ["nodes=[arm]", "nodes=[wrist]"]
    for cmd in cmds:
        assert cmd[1:3] == ["-m", "robot_rl.ros.bringup"] and "ros.backend=rclpy" in cmd


def test_twin_launch_keeps_the_twin_in_one_process(monkeypatch) -> None:
    cmds = _commands("twin.launch.py", str(REPO / "configs/bringup/twin_cameras.yaml"), monkeypatch)
    assert len(cmds) == 1 and not any(arg.startswith("nodes=") for arg in cmds[0])


def test_a_bad_config_fails_at_launch_with_its_name(monkeypatch, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("robot: kuka\n")
    with pytest.raises(ValueError, match="robot must be one of"):
        _commands("real.launch.py", str(bad), monkeypatch)
