"""ROS 2 launch for the MuJoCo twin behind the robot's nodes (one process: the nodes share a scene).

    ros2 launch launch/twin.launch.py                       # configs/bringup/twin.yaml
    ros2 launch launch/twin.launch.py config:=configs/bringup/twin_cameras.yaml

Without ROS, the same nodes run over zenoh: robot-rl bringup configs/bringup/twin.yaml
"""

from __future__ import annotations

import sys
from pathlib import Path

from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction

from launch import LaunchDescription

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bringup_processes import bringup_commands

DEFAULT = str(Path(__file__).resolve().parents[1] / "configs" / "bringup" / "twin.yaml")


def _processes(context, *_args, **_kwargs):
    config = context.launch_configurations["config"]
    return [ExecuteProcess(cmd=cmd, output="screen") for cmd in bringup_commands(config)]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument("config", default_value=DEFAULT, description="bringup yaml of a twin"),
            OpaqueFunction(function=_processes),
        ]
    )
