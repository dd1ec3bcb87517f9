"""The twin's nodes in the actor's own process: `env=robot_twin env.in_process_twin=true`.

RobotEnv then drives the same arm, task and camera nodes as `robot-rl bringup
configs/bringup/twin.yaml` starts (the safety filter and the watchdog included), over an
in-process bus instead of zenoh: no second process, no port. What it adds is access: the twin's
MuJoCo task is in this process, so the simulated person (teleop=sim_human) can read its true
poses through TwinScene.paused(), as a person looks at the real scene. A twin in another
process, or a robot, lends no such access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from robot_rl.ros.bringup import Bringup, BringupConfig, CameraSpec
from robot_rl.ros.inproc import InprocBus, InprocTransport
from robot_rl.ros.transport import Transport

if TYPE_CHECKING:
    from robot_rl.envs.robot_env import RobotEnvConfig
    from sim.twin import TwinScene


def twin_bringup_config(env_cfg: RobotEnvConfig, seed: int) -> BringupConfig:
    """configs/bringup/twin.yaml for a RobotEnvConfig: its task, object randomisation, base frame,
    and its cameras at its image size."""
    height, width = env_cfg.image_size
    cameras = [CameraSpec(name=c, sim_camera=c, width=width, height=height) for c in env_cfg.cameras]
    return BringupConfig(
        robot="twin",
        task=env_cfg.task,
        seed=seed,
        randomize=env_cfg.randomize,
        base_frame=env_cfg.base_frame,
        cameras=cameras,
        status_every_s=0.0,
    )


class LocalTwin:
    """The twin's nodes (each spun on its own thread, as in a bringup) on one in-process bus;
    seed: the twin's object placements."""

    def __init__(self, env_cfg: RobotEnvConfig, seed: int = 0) -> None:
        self.bus = InprocBus()
        self.bringup = Bringup(twin_bringup_config(env_cfg, seed), open_node=lambda _node: self.transport())
        self.bringup.start()

    def transport(self) -> Transport:
        """A new transport on the twin's bus (RobotEnv's); its owner spins and shuts it."""
        return InprocTransport(self.bus)

    @property
    def scene(self) -> TwinScene:
        return self.bringup.scene

    def close(self) -> None:
        self.bringup.close()
