"""`robot-rl bringup CONFIG`: the robot PC's nodes (arm, cameras, and for the twin the task node),
and a teleop device's node where the yaml has a `teleop:` section, started from one yaml file over
zenoh or rclpy.

    robot-rl bringup configs/bringup/twin.yaml            # the MuJoCo twin, no robot, no ROS
    robot-rl bringup configs/bringup/ur5e_realsense.yaml driver.host=192.168.1.10 ros.backend=rclpy
    robot-rl bringup configs/bringup/teleop_keyboard.yaml # only a teleop node (another machine)

The twin's nodes share one MuJoCo scene, so they run in one process; a real robot's arm and
camera nodes can run in one process or, with `nodes=[arm]` / `nodes=[wrist]`, one per process
(launch/real.launch.py starts them so). Every command to the arm passes the SafetyFilter built
from `safety` (drivers.safety.SafetyLimits; its workspace box defaults to the task contract's,
sim/task_spec.py), whichever driver stands behind the node.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from drivers.safety import SafetyFilter, SafetyLimits
from drivers.teleop.base import TeleopError
from robot_rl.hil.devices import HARDWARE, make_hardware_device
from robot_rl.ros.connect import RosConfig, open_transport
from robot_rl.ros.nodes.arm_node import ArmNode, ArmNodeParams
from robot_rl.ros.nodes.camera_node import CameraNode, CameraNodeParams
from robot_rl.ros.nodes.task_node import TaskNode, TaskNodeParams
from robot_rl.ros.nodes.teleop_node import TeleopNode, TeleopNodeParams
from robot_rl.ros.transport import Transport
from sim.task_spec import WORKSPACE_HIGH, WORKSPACE_LOW

log = logging.getLogger(__name__)
# robot -> (module, driver class, config class) of its arm driver, imported only when it is used
# (each needs its vendor's library). The twin's arm is the scene's own.
ARM_DRIVERS: dict[str, tuple[str, str, str]] = {
    "ur": ("drivers.ur", "URArm", "URConfig"),
    "franka": ("drivers.franka", "FrankaArm", "FrankaConfig"),
    "xarm": ("drivers.xarm", "XArmArm", "XArmConfig"),
}
ROBOTS = ("twin", *ARM_DRIVERS)


@dataclass
class CameraSpec:
    name: str = "wrist"  # topics /<name>/color/image_raw, /<name>/color/camera_info
    driver: str = "sim"  # sim (a camera of the twin's scene, named by sim_camera) | realsense
    sim_camera: str = "wrist"  # sim: wrist | front
    serial_number: str = ""  # realsense: "" = the only one connected
    width: int = 64  # what the driver captures (RealSense: a mode it supports, e.g. 640x480)
    height: int = 64
    fps: int = 30
    resize: list[int] | None = None  # [W, H] published; the env's image_size is [H, W]
    rate_hz: float = 30.0

    def __post_init__(self) -> None:
        if self.driver not in ("sim", "realsense"):
            raise ValueError(f"camera {self.name!r}: driver must be sim or realsense, got {self.driver!r}")


@dataclass
class TeleopSpec:
    """A teleop device published by a teleop node (robot_rl/ros/nodes/teleop_node.py), which an
    actor reads with teleop=ros."""

    device: str = "keyboard"  # keyboard | spacemouse | gamepad
    # The device's config (drivers/teleop: deadband, scale, axes, buttons, path, ...).
    config: dict[str, Any] = field(default_factory=dict)
    rate_hz: float = 50.0  # poll and publish, idle or not (the heartbeat)

    def __post_init__(self) -> None:
        if self.device not in HARDWARE:
            raise ValueError(f"teleop.device must be one of {sorted(HARDWARE)}, got {self.device!r}")


def default_safety() -> SafetyLimits:
    """The bringup's default limits, in the base frame: the task contract's workspace box, so the
    arm may go wherever a policy's target may (and nowhere else)."""
    return SafetyLimits(
        workspace_low=WORKSPACE_LOW,
        workspace_high=WORKSPACE_HIGH,
        max_step_m=0.05,  # per command: a 10 Hz policy moves <= 2.5 cm/tick, plus one tick of lag
        max_rot_step_rad=0.3,
        max_linear_speed=0.25,  # m/s, twists
        max_angular_speed=1.0,  # rad/s, twists
        max_force_n=30.0,
        max_command_age_s=0.2,
    )


@dataclass
class BringupConfig:
    robot: str = "twin"  # twin | ur | franka | xarm
    driver: dict[str, Any] = field(default_factory=dict)  # the arm driver's config, e.g. {host: 10.0.0.2}
    task: str = "pick_cube"  # twin: the sim scene
    seed: int = 0  # twin: object placements
    randomize: bool = True  # twin: object placement noise
    physics_hz: float = 500.0  # twin
    state_rate_hz: float = 200.0  # joint_states / current_pose
    watchdog_timeout_s: float = 0.2
    base_frame: str = "base"
    gripper_max_width_m: float = 0.08
    # Real arms: a MuJoCo twin mirrors the joints and refuses commands that would hit the table or
    # the arm itself (sim/twin_guard.py). arm_xml: the arm's MJCF (None: the built-in Panda-like arm).
    guard: bool = False
    guard_arm_xml: str | None = None
    safety: SafetyLimits = field(default_factory=default_safety)
    cameras: list[CameraSpec] = field(default_factory=list)
    teleop: TeleopSpec | None = None  # a teleop node; None: none
    nodes: list[str] = field(default_factory=list)  # which to start (arm, task, cameras, teleop); [] = all
    # The bringup is where others connect: it listens on 7447 and dials no one by default.
    ros: RosConfig = field(default_factory=lambda: RosConfig(connect=[], listen=["tcp/127.0.0.1:7447"]))
    status_every_s: float = 10.0  # a status line (counters) this often; 0 = never

    def __post_init__(self) -> None:
        if self.robot not in ROBOTS:
            raise ValueError(f"robot must be one of {ROBOTS}, got {self.robot!r}")
        if self.robot != "twin" and any(c.driver == "sim" for c in self.cameras):
            raise ValueError("sim cameras render the twin's scene: use robot=twin or driver=realsense")
        names = ["arm", "task", *[c.name for c in self.cameras], *(["teleop"] if self.teleop else [])]
        unknown = sorted(set(self.nodes) - set(names))
        if unknown:
            raise ValueError(f"nodes {unknown} are not in this bringup; it has {names}")


def load_config(path: str | Path, overrides: list[str] | None = None) -> BringupConfig:
    """The yaml at path merged over the defaults, then key=value overrides; a wrong key or type
    fails here with OmegaConf's message naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"bringup config {path} does not exist (see configs/bringup/)")
    base = OmegaConf.structured(BringupConfig)
    # OmegaConf makes a frozen dataclass's node read-only; SafetyLimits is frozen so that limits
    # never change under a running filter. to_object builds (and checks) a new one from the merge.
    OmegaConf.set_readonly(base.safety, False)
    merged = OmegaConf.merge(base, OmegaConf.load(path), OmegaConf.from_dotlist(overrides or []))
    return OmegaConf.to_object(merged)  # type: ignore[return-value]


def _arm_driver(cfg: BringupConfig, clock: Callable[[], float]) -> Any:
    module_name, arm_class, config_class = ARM_DRIVERS[cfg.robot]
    module = importlib.import_module(module_name)
    return getattr(module, arm_class)(getattr(module, config_class)(**cfg.driver), clock=clock)


def _guard(cfg: BringupConfig, limits: SafetyLimits) -> Any:
    if not cfg.guard:
        return None
    from sim.twin_guard import TwinGuard, TwinGuardConfig

    box = {"workspace_low": limits.workspace_low, "workspace_high": limits.workspace_high}
    return TwinGuard(config=TwinGuardConfig(**box, arm_xml=cfg.guard_arm_xml))


def _camera(spec: CameraSpec, scene: Any) -> Any:
    if spec.driver == "sim":
        return scene.camera(spec.sim_camera, spec.width, spec.height)
    from drivers.realsense import RealSenseCamera, RealSenseConfig

    return RealSenseCamera(RealSenseConfig(spec.serial_number, spec.width, spec.height, spec.fps))


class SpinThreads:
    """One spin thread per node's transport, so a slow node (a camera) never delays another (the
    arm's state). stop() joins them: no callback runs after it."""

    def __init__(self) -> None:
        self._running = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, transports: dict[str, Transport]) -> None:
        self._running.set()
        for name, transport in transports.items():
            thread = threading.Thread(target=self._spin, args=(transport,), name=f"spin-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _spin(self, transport: Transport) -> None:
        while self._running.is_set():
            transport.spin_once(0.05)

    def stop(self) -> None:
        self._running.clear()
        for thread in self._threads:
            thread.join(timeout=2.0)
        self._threads.clear()


class Bringup:
    """The nodes of one config, each on its own transport (one ROS node each) and spin thread.
    open_node: a node's name -> its transport (robot_rl/ros/local_twin.py: an in-process bus);
    None opens cfg.ros's backend."""

    def __init__(
        self,
        cfg: BringupConfig,
        clock: Callable[[], float] = time.time,
        open_node: Callable[[str], Transport] | None = None,
    ) -> None:
        self.cfg = cfg
        self._open_node = open_node
        self.scene: Any = None
        self.nodes: dict[str, Any] = {}
        self.transports: dict[str, Transport] = {}
        self._closers: list[Callable[[], None]] = []
        self._spinners = SpinThreads()
        wanted = set(cfg.nodes) or {"arm", "task", *[c.name for c in cfg.cameras], "teleop"}
        try:
            self._build(wanted, clock)
        except BaseException:
            self.close()
            raise

    def _build(self, wanted: set[str], clock: Callable[[], float]) -> None:
        cfg = self.cfg
        if cfg.robot == "twin" and wanted & {"arm", "task", *[c.name for c in cfg.cameras]}:
            from sim.twin import TwinScene  # not for a teleop-only machine

            self.scene = TwinScene(
                cfg.task, physics_hz=cfg.physics_hz, randomize=cfg.randomize, seed=cfg.seed, clock=clock
            )
            self._closers.append(self.scene.close)
        if "arm" in wanted:
            arm = self.scene.arm if self.scene is not None else _arm_driver(cfg, clock)
            if self.scene is None:
                self._closers.append(arm.close)
            params = ArmNodeParams(
                state_rate_hz=cfg.state_rate_hz,
                watchdog_timeout_s=cfg.watchdog_timeout_s,
                base_frame=cfg.base_frame,
                gripper_max_width_m=cfg.gripper_max_width_m,
            )
            filt, guard = SafetyFilter(cfg.safety), _guard(cfg, cfg.safety)
            self._add("arm", lambda tr: ArmNode(tr, arm, filt, params, clock=clock, guard=guard))
        if "task" in wanted and self.scene is not None:
            task_params = TaskNodeParams(base_frame=cfg.base_frame)
            self._add("task", lambda tr: TaskNode(tr, self.scene, task_params))
        for spec in cfg.cameras:
            if spec.name in wanted:
                camera = _camera(spec, self.scene)
                camera.start()
                self._closers.append(camera.stop)
                resize = tuple(spec.resize) if spec.resize else None
                params = CameraNodeParams(spec.name, spec.rate_hz, resize=resize)  # type: ignore[arg-type]
                self._add(spec.name, lambda tr, c=camera, p=params: CameraNode(tr, c, p))
        if "teleop" in wanted and cfg.teleop is not None:
            device = make_hardware_device(cfg.teleop.device, cfg.teleop.config)
            device.start()  # TeleopError: what is missing (device, permission, terminal)
            self._closers.append(device.stop)  # restores a terminal the keyboard changed
            teleop_params = TeleopNodeParams(rate_hz=cfg.teleop.rate_hz)
            self._add("teleop", lambda tr: TeleopNode(tr, device, teleop_params, clock=clock))

    def _add(self, name: str, make: Callable[[Transport], Any]) -> None:
        transport = self._open_node(name) if self._open_node is not None else self._open_ros(name)
        self.transports[name] = transport
        self.nodes[name] = make(transport)

    def _open_ros(self, name: str) -> Transport:
        ros = self.cfg.ros
        if self.transports:  # the first node listens for others; the rest reach it in-process
            first = next(iter(self.cfg.ros.listen), None)
            connect = [first.replace("0.0.0.0", "127.0.0.1")] if first else list(ros.connect)
            ros = dataclasses.replace(ros, connect=connect, listen=["tcp/127.0.0.1:0"])
        return open_transport(ros, f"{name}_node")

    def start(self) -> None:
        """Spin every node on its own thread."""
        self._spinners.start(self.transports)

    def counters(self) -> dict[str, dict[str, int]]:
        return {name: dict(node.counters) for name, node in self.nodes.items()}

    def close(self) -> None:
        self._spinners.stop()
        for name, node in self.nodes.items():
            node.destroy()
            self.transports[name].shutdown()
        for close in reversed(self._closers):
            try:
                close()
            except Exception as exc:  # keep closing the rest: a camera must not keep the arm open
                log.error("bringup close: %s", exc)
        self.nodes.clear()
        self.transports.clear()


def run(cfg: BringupConfig, seconds: float | None = None) -> dict[str, dict[str, int]]:
    """Start the nodes and serve until SIGINT/SIGTERM (or `seconds`); returns the node counters."""
    bringup = Bringup(cfg)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    bringup.start()
    names = ", ".join(bringup.nodes)
    print(f"bringup: {cfg.robot} nodes [{names}] on {cfg.ros.backend} {cfg.ros.listen}", flush=True)
    print("READY", flush=True)
    deadline = None if seconds is None else time.monotonic() + seconds
    next_status = time.monotonic() + cfg.status_every_s
    try:
        while not stop.wait(0.1):
            if deadline is not None and time.monotonic() >= deadline:
                break
            if cfg.status_every_s > 0 and time.monotonic() >= next_status:
                next_status += cfg.status_every_s
                print(f"bringup: {bringup.counters()}", flush=True)
    finally:
        counters = bringup.counters()
        bringup.close()
    print(f"bringup: stopped; {counters}", flush=True)
    return counters


def main(argv: list[str] | None = None) -> None:
    """robot-rl bringup CONFIG [key=value ...] [--seconds S]"""
    import argparse

    parser = argparse.ArgumentParser(prog="robot-rl bringup", description=__doc__.splitlines()[0])
    parser.add_argument("config", help="a yaml file, e.g. configs/bringup/twin.yaml")
    parser.add_argument("overrides", nargs="*", help="key=value, e.g. ros.backend=rclpy seed=3")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long (default: Ctrl-C)")
    args = parser.parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        cfg = load_config(args.config, args.overrides)
    except (FileNotFoundError, ValueError, OmegaConfBaseException) as err:
        raise SystemExit(f"error: {err}") from err
    try:
        run(cfg, args.seconds)
    except TeleopError as err:  # the teleop device cannot be opened: say why, no traceback
        raise SystemExit(f"error: {err}") from err


if __name__ == "__main__":
    main()
