"""What the launch files start: one `robot-rl bringup` process per group of nodes (no ROS imports).

A real robot's arm and each camera get their own process, as ROS 2 nodes usually do, so a camera
that hangs never stalls the arm's state stream. The twin's nodes share one MuJoCo scene and so
one process. Every process runs with ros.backend=rclpy: under `ros2 launch` ROS 2 is sourced.
"""

from __future__ import annotations

import sys
from pathlib import Path

from robot_rl.ros.bringup import load_config


def bringup_commands(config: str, overrides: list[str] | None = None, split: bool = True) -> list[list[str]]:
    """Command lines of the bringup processes for config (a yaml path)."""
    cfg = load_config(config, overrides)
    base = [sys.executable, "-m", "robot_rl.ros.bringup", str(Path(config).resolve()), "ros.backend=rclpy"]
    base += list(overrides or [])
    if not split or cfg.robot == "twin":
        return [base]
    groups = [["arm"], *[[camera.name] for camera in cfg.cameras]]
    return [[*base, f"nodes=[{','.join(group)}]"] for group in groups]
