"""ROS 2 launch for a real robot: the arm node and one process per camera, from a bringup yaml.

    ros2 launch launch/real.launch.py config:=configs/bringup/ur5e_realsense.yaml

Needs robot-rl installed in the Python that ROS 2 uses (pip install -e . in a sourced shell).
Without ROS, the same nodes run over zenoh: robot-rl bringup configs/bringup/ur5e_realsense.yaml
"""

from __future__ import annotations

import sys
from pathlib import Path

from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction

from launch import LaunchDescription

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bringup_processes import bringup_commands


def _processes(context, *_args, **_kwargs):
    config = context.launch_configurations["config"]
    return [ExecuteProcess(cmd=cmd, output="screen") for cmd in bringup_commands(config)]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "config", description="bringup yaml, e.g. configs/bringup/ur5e_realsense.yaml"
            ),
            OpaqueFunction(function=_processes),
        ]
    )
