"""Observation and command latency through the ROS 2 nodes: zenoh across processes vs in-process.

Observation: two synthetic 640x480 rgb8 cameras at 30 fps, each behind a CameraNode (polling at
30 Hz, as bringup does), and the twin's arm node, feed a RobotEnv (cameras at [480, 640], no
privileged state, no success topic) stepping at 10 Hz. Per observation and camera: its age
(assembly time - capture stamp, info["obs_age_s"]); per frame: delivery (the env's callback
starting - capture stamp), split into the node's poll wait, its publish() call, publish -> the
env transport's queue, and queue -> callback. Over zenoh the cameras and the arm each run in a
process of their own (`--serve`); in process the cameras and their nodes share the env's
process and an InprocBus (CDR-encoded, as a test rig runs them) while the arm stays in its
process, so only the images' hand-over differs; a read of camera.latest() right after each step
gives the floor: the newest frame's age.

Command: the twin's SimArm behind the ArmNode is wrapped so every move_to_pose is timed; command
latency = driver call - the env's publish stamp, jitter = |interval between driver calls -
control period|, at control_hz 10 and 50, over zenoh (the arm in its own process) and in
process (the twin's arm node and the env on one InprocBus).

robot_rl is not edited: the timings come from wrappers (a CameraNode subclass, a recording arm,
transport proxies: benchmarks/ros_fakes.py) and from watching messages reach the transports'
executor queues (Registration.watch_queued); benchmarks/ros_latency_report.py turns the records
into figures and the RESULTS.md section. Each case runs twice, ABBA between the paths, so a
trend in the shared machine's load hits both alike.
The synthetic camera's clock runs 0.33% slow (29.9 fps): a camera locked to the host clock
would give one arbitrary phase against the node's poll per run; this one sweeps every phase
about every 10 s, as a real camera's drifting clock does over a longer session. Observation
runs reset every EPISODE_STEPS steps, so the env's tick phase is redrawn too.

    python -m benchmarks.ros_latency [--seconds 45] [--quick]
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import math
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import free_port, write_results
from benchmarks.ros_fakes import (
    CAMERA_FPS,
    CAMERAS,
    FPS,
    HEIGHT,
    WIDTH,
    QueueProbe,
    RecordingArm,
    SyntheticCamera,
    TimedCameraNode,
    TimedTransport,
    image_topic,
)
from benchmarks.ros_latency_report import command_samples, markdown, observation_samples, pool
from drivers.safety import SafetyFilter
from robot_rl.envs.robot_env import ObservationTimeout, RobotEnv, RobotEnvConfig, RobotTopics
from robot_rl.ros import codec, messages
from robot_rl.ros.bringup import SpinThreads, default_safety
from robot_rl.ros.connect import RosConfig, open_transport
from robot_rl.ros.inproc import InprocBus, InprocTransport
from robot_rl.ros.nodes.arm_node import ArmNode, ArmNodeParams
from robot_rl.ros.nodes.camera_node import CameraNodeParams
from robot_rl.ros.transport import Transport
from sim.twin import TwinScene

REPO = Path(__file__).resolve().parents[1]
EPISODE_STEPS = 12  # observation runs: a reset (a new tick phase) every ~1.5 s at 10 Hz


# ---------------------------------------------------------------- robot side
class RobotSide:
    """Robot-side nodes: the twin's arm (driver recorded) and/or n synthetic cameras, each node on
    its own transport and spin thread, as `robot-rl bringup` runs them."""

    def __init__(self, make_transport: Callable[[str], Transport], arm: bool, n_cameras: int) -> None:
        self.transports: dict[str, Transport] = {}
        self.nodes: dict[str, Any] = {}
        self.scene: TwinScene | None = None
        if arm:
            self.scene = TwinScene("pick_cube", seed=0, clock=time.time)
            self.arm = RecordingArm(self.scene.arm)
            safety = SafetyFilter(default_safety())  # configs/bringup/twin.yaml's limits
            params = ArmNodeParams()
            probe = QueueProbe(make_transport("arm_node"), params.target_pose_topic)
            self.arm_queued = probe.queued  # target_pose reaching the arm node's queue
            self.transports["arm"] = probe  # type: ignore[assignment]
            self.nodes["arm"] = ArmNode(probe, self.arm, safety, params, clock=time.time)  # type: ignore[arg-type]
        self.cameras: dict[str, SyntheticCamera] = {}
        for i, name in enumerate(CAMERAS[:n_cameras]):
            camera = self.cameras[name] = SyntheticCamera(name, seed=i)
            camera.start()
            tr = self.transports[name] = make_transport(f"{name}_node")
            self.nodes[name] = TimedCameraNode(tr, camera, CameraNodeParams(name, FPS))
        self._spinners = SpinThreads()  # as bringup spins its nodes

    def start(self) -> None:
        self._spinners.start(self.transports)

    def stop(self) -> None:
        """Stop spinning: no callback runs after this, so the records hold still."""
        self._spinners.stop()

    def close(self) -> None:
        self.stop()
        for name, transport in self.transports.items():
            self.nodes[name].destroy()
            transport.shutdown()
        for camera in self.cameras.values():
            camera.stop()
        if self.scene is not None:
            self.scene.close()

    def records(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "cameras": {
                name: {
                    "sent": self.nodes[name].sent,
                    "captured": cam.captured,
                    "counters": self.nodes[name].counters,
                }
                for name, cam in self.cameras.items()
            }
        }
        if self.scene is not None:
            out |= {
                "driver_calls": self.arm.calls,
                "arm_queued": self.arm_queued,
                "holds": self.arm.holds,
                "arm_counters": dict(self.nodes["arm"].counters),
            }
        return out


def serve(port: int, arm: bool, n_cameras: int, out: Path, seconds: float) -> None:
    """Robot-side nodes over zenoh until SIGINT/SIGTERM or `seconds`; their records to `out`."""
    first = f"tcp/127.0.0.1:{port}"
    made: list[str] = []

    def make(name: str) -> Transport:  # the first session listens, the others reach it (bringup)
        ros = RosConfig(connect=[first] if made else [], listen=["tcp/127.0.0.1:0"] if made else [first])
        made.append(name)
        return open_transport(ros, name)

    faulthandler.register(signal.SIGUSR1)  # a hung process shows its threads' stacks in its log
    side = RobotSide(make, arm, n_cameras)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    side.start()
    print("READY", flush=True)
    cpu0, wall0 = cpu_seconds(), time.monotonic()
    deadline = wall0 + seconds
    while not stop.wait(0.1) and time.monotonic() < deadline:  # short waits: see bringup.run
        pass
    side.stop()
    usage = {"cpu_s": cpu_seconds() - cpu0, "wall_s": time.monotonic() - wall0}
    out.write_text(json.dumps(side.records() | usage))  # before close: a slow zenoh shutdown loses nothing
    print("RECORDS", flush=True)
    side.close()


class Server:
    """A robot-side process of this script (`--serve`) listening on a free loopback port."""

    def __init__(self, tmp: Path, arm: bool, n_cameras: int) -> None:
        self.port = free_port()
        self.out, self.log = tmp / f"serve_{self.port}.json", tmp / f"serve_{self.port}.log"
        cmd = [sys.executable, "-m", "benchmarks.ros_latency", "--serve", str(self.port),
               "--arm", str(int(arm)), "--cameras", str(n_cameras), "--out", str(self.out)]  # fmt: skip
        with self.log.open("w") as log:
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
        self.endpoint = f"tcp/127.0.0.1:{self.port}"

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        deadline = time.monotonic() + timeout_s
        while "READY" not in self.log.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"a robot-side process did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> dict[str, Any]:
        """SIGINT, then its records."""
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGUSR1)  # its stacks into the log, then it goes
            time.sleep(2.0)
            self.proc.kill()
            self.proc.wait()
        if not self.out.exists():
            raise RuntimeError(f"a robot-side process wrote no records:\n{self.log.read_text()[-3000:]}")
        return json.loads(self.out.read_text())


# ---------------------------------------------------------------- actor side
def cpu_seconds() -> float:
    """User + system CPU time of this process so far, all threads (zenoh's included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_actor(
    transport: TimedTransport, n_cameras: int, hz: float, seconds: float, cameras: dict[str, SyntheticCamera]
) -> dict[str, Any]:
    """Step a RobotEnv for `seconds` with slow sine actions; per-step and per-frame records."""
    names = list(CAMERAS[:n_cameras])
    episode_steps = EPISODE_STEPS if n_cameras else 10**9  # command runs: one unbroken tick train
    cfg = RobotEnvConfig(
        control_hz=hz, privileged=False, cameras=names, image_size=[HEIGHT, WIDTH], connect_timeout_s=60.0,
        max_episode_steps=episode_steps, topics=RobotTopics(success="", reset_scene=""),
    )  # fmt: skip
    env = RobotEnv(cfg, transport=transport, seed=0)  # type: ignore[arg-type]
    cpu0, wall0 = cpu_seconds(), time.monotonic()
    spinning = threading.Event()
    spinning.set()

    def spin(tr: Transport) -> None:
        while spinning.is_set():
            tr.spin_once(0.02)  # as RobotEnv spins a transport it owns

    spinners = [threading.Thread(target=spin, args=(tr,), daemon=True) for tr in transport.spun]
    for thread in spinners:
        thread.start()
    ages: dict[str, list[float]] = {c: [] for c in names}
    direct: dict[str, list[float]] = {c: [] for c in cameras}
    windows: list[tuple[float, float]] = []
    amp, k, timeouts = 0.2 * 10.0 / hz, 0, 0  # the same ee speed (<= 5 cm/s) at every rate
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            try:
                env.reset()
            except ObservationTimeout:
                timeouts += 1
                continue
            start = time.time()
            for _ in range(episode_steps):
                if time.monotonic() >= deadline:
                    break
                phase = 2 * math.pi * k / hz / 4.0
                k += 1
                action = np.array([amp * math.sin(phase), amp * math.cos(phase), 0.0, -1.0], np.float32)
                try:
                    info = env.step(action)[4]
                except ObservationTimeout:
                    timeouts += 1
                    break
                now = time.time()
                for cam in names:
                    ages[cam].append(info["obs_age_s"][image_topic(cam)])
                for cam, device in cameras.items():  # the floor: no node, no transport
                    direct[cam].append(now - device.latest().stamp)
            windows.append((start, time.time()))
    finally:
        env.close()
        spinning.clear()
        for thread in spinners:
            thread.join(timeout=2.0)
        transport.shutdown()
    return {
        "obs_age": ages, "direct": direct, "windows": windows, "timeouts": timeouts,
        "arrivals": transport.arrivals, "queued": transport.queued, "commands": transport.commands,
        "env_counters": dict(env.counters), "cpu_s": cpu_seconds() - cpu0, "wall_s": time.monotonic() - wall0,
    }  # fmt: skip


# ---------------------------------------------------------------- cases
def run_case(path: str, n_cameras: int, hz: float, seconds: float, tmp: Path) -> dict[str, Any]:
    """zenoh: the arm's process, and the cameras' process when there are cameras, both --serve.
    in process with cameras: the cameras and their nodes on an InprocBus in the env's process,
    the arm still over zenoh in its own process (so only the images' hand-over differs); in
    process without cameras: the twin's arm node and the env on one InprocBus."""
    if path == "in process" and not n_cameras:
        bus = InprocBus()
        side = RobotSide(lambda _name: InprocTransport(bus), True, 0)
        side.start()
        try:
            actor = run_actor(TimedTransport(InprocTransport(bus)), 0, hz, seconds, {})
            return {"actor": actor, "robot": side.records(), "cpu": {"env + robot side": _load(actor)}}
        finally:
            side.close()
    servers = [Server(tmp, True, 0)] + (
        [Server(tmp, False, n_cameras)] if path == "zenoh" and n_cameras else []
    )
    local: RobotSide | None = None
    try:
        for server in servers:
            server.wait_ready()
        ros = RosConfig(connect=[s.endpoint for s in servers], listen=["tcp/127.0.0.1:0"])
        zenoh_tr = open_transport(ros, "robot_env")
        images = None
        if path == "in process":
            bus = InprocBus()
            local = RobotSide(lambda _name: InprocTransport(bus), False, n_cameras)
            local.start()
            images = InprocTransport(bus)
        cameras = local.cameras if local is not None else {}
        actor = run_actor(TimedTransport(zenoh_tr, images), n_cameras, hz, seconds, cameras)
    finally:
        if local is not None:
            local.close()
        records = [server.stop() for server in servers]
    robot = records[0]
    cpu = {"env" + (" + cameras" if local is not None else ""): _load(actor), "arm": _load(robot)}
    if local is not None:
        robot["cameras"] = local.records()["cameras"]
    elif len(records) > 1:
        robot["cameras"] = records[1]["cameras"]
        cpu["cameras"] = _load(records[1])
    return {"actor": actor, "robot": robot, "cpu": cpu}


def _load(record: dict[str, Any]) -> float:
    """Cores a process kept busy on average (CPU s per wall s)."""
    return record["cpu_s"] / max(record["wall_s"], 1e-9)


def codec_costs(reps: int = 30) -> dict[str, float]:
    """Median ms of each step one 640x480 rgb8 frame goes through, alone on one thread."""
    cdr = codec.get_codec()
    frame = np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), np.uint8)
    steps: dict[str, list[float]] = {
        k: [] for k in ("image_msg", "CDR encode", "CDR decode", "image_from_msg")
    }
    for _ in range(reps):
        t0 = time.perf_counter()
        msg = messages.image_msg(frame, time.time(), "cam")
        t1 = time.perf_counter()
        payload = cdr.encode(msg, codec.IMAGE)
        t2 = time.perf_counter()
        decoded = cdr.decode(payload, codec.IMAGE)
        t3 = time.perf_counter()
        messages.image_from_msg(decoded)
        t4 = time.perf_counter()
        for name, dt in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            steps[name].append(dt)
    return {name: 1e3 * float(np.median(v)) for name, v in steps.items()} | {"payload_mb": len(payload) / 1e6}


# ---------------------------------------------------------------- the cases in turn
PAIRS = ((2, 10.0), (0, 10.0), (0, 50.0))  # (cameras, control Hz), each over both paths
PATHS = ("zenoh", "in process")
REPEATS = 2  # runs per case, in ABBA order, so a trend in the machine's load hits both paths alike


def run_all(seconds: float, tmp: Path, failures: list[str]) -> list[dict[str, Any]]:
    cases = []
    for n_cameras, hz in PAIRS:
        runs: dict[str, list[tuple[float, dict[str, Any]]]] = {path: [] for path in PATHS}
        for rep in range(REPEATS):
            for path in PATHS if rep % 2 == 0 else PATHS[::-1]:
                print(f"{path}, {n_cameras} cameras, {hz:g} Hz, run {rep + 1} ...", flush=True)
                load, t0 = os.getloadavg()[0], time.monotonic()
                try:
                    raw = run_case(path, n_cameras, hz, seconds / REPEATS, tmp)
                except RuntimeError as err:  # a robot-side process hung or died: one fresh try
                    failures.append(f"{path}, {n_cameras} cameras, {hz:g} Hz: {err}")
                    print(f"  failed, retrying: {err}", flush=True)
                    raw = run_case(path, n_cameras, hz, seconds / REPEATS, tmp)
                runs[path].append((load, raw))
                print(f"  {time.monotonic() - t0:.0f} s", flush=True)
        for path, done in runs.items():
            raws = [raw for _, raw in done]
            case: dict[str, Any] = {
                "path": path,
                "cameras": n_cameras,
                "control_hz": hz,
                "load_avg_1m_at_runs": [load for load, _ in done],
                "cpu_cores": {k: float(np.mean([raw["cpu"][k] for raw in raws])) for k in raws[0]["cpu"]},
                "command": pool([command_samples(raw, hz) for raw in raws]),
            }
            if n_cameras:
                case["observation"] = pool([observation_samples(raw) for raw in raws])
            cases.append(case)
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=45.0, help="stepping time per case")
    parser.add_argument("--quick", action="store_true", help="smoke run: 6 s per case, JSON only")
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)  # the robot side
    parser.add_argument("--arm", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--cameras", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--serve-seconds", type=float, default=900.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, bool(args.arm), args.cameras, args.out, args.serve_seconds)
        return
    if args.quick:
        args.seconds = 6.0
    load_start = os.getloadavg()[0]
    r: dict[str, Any] = {
        "seconds_per_case": args.seconds,
        "camera_fps": CAMERA_FPS,
        "codec_ms": codec_costs(),
    }
    r["payload_mb"] = r["codec_ms"].pop("payload_mb")
    with tempfile.TemporaryDirectory() as tmp:
        r["failed_runs"] = []
        r["cases"] = run_all(args.seconds, Path(tmp), r["failed_runs"])
    r["load_avg_1m"] = [load_start, os.getloadavg()[0]]
    table = markdown(r, REPEATS, EPISODE_STEPS)
    print(table)
    cmd = f"python -m benchmarks.ros_latency {' '.join(sys.argv[1:])}".strip()
    name = "ros_latency_quick" if args.quick else "ros_latency"
    write_results(name, r, table, command=cmd, section=not args.quick)


if __name__ == "__main__":
    main()
