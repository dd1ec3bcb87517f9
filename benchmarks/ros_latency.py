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
a transport proxy) and from timing the pushes into the transports' executor queues. Each case
runs twice, ABBA between the paths, so a trend in the shared machine's load hits both alike.
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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import free_port, write_results
from drivers.camera import CameraIntrinsics, CameraNotStarted, Frame
from drivers.safety import PoseCommand, SafetyFilter
from robot_rl.envs.robot_env import ObservationTimeout, RobotEnv, RobotEnvConfig, RobotTopics
from robot_rl.ros import codec
from robot_rl.ros.bringup import SpinThreads, default_safety
from robot_rl.ros.connect import RosConfig, open_transport
from robot_rl.ros.inproc import InprocBus, InprocTransport
from robot_rl.ros.nodes.arm_node import ArmNode, ArmNodeParams
from robot_rl.ros.nodes.camera_node import CameraNode, CameraNodeParams
from robot_rl.ros.transport import RELIABLE, QoS, Transport
from sim.twin import TwinScene

REPO = Path(__file__).resolve().parents[1]
CAMERAS = ("wrist", "front")
HEIGHT, WIDTH, FPS = 480, 640, 30.0
CAMERA_FPS = FPS * (1 - 1 / 300)  # see the module docstring: the phase sweeps every ~10 s
EPISODE_STEPS = 12  # observation runs: a reset (a new tick phase) every ~1.5 s at 10 Hz
POOL = 4  # distinct noisy frames per camera, cycled


# ---------------------------------------------------------------- robot side
def time_pushes(transport: Any, callback: Callable[[Any], None], log: list[tuple[float, float]]) -> None:
    """Log (time, header stamp) of each message queued for `callback`'s subscription.

    Both transports decode on the middleware's (or publisher's) thread and push into an executor
    WorkQueue that the spin thread drains; timing the push splits the transport's delivery from
    the keep-last queue's wait and evictions. It reaches into the executor: a benchmark's probe."""
    work = next(q for q in transport._executor._queues if q.run == callback)
    push = work.push

    def timed_push(msg: Any) -> None:
        log.append((time.time(), codec.stamp_from_time(msg.header.stamp)))
        push(msg)

    work.push = timed_push  # type: ignore[method-assign]


class SyntheticCamera:
    """Camera protocol: rgb8 frames from a pool of noisy images, 'captured' on its own thread
    and stamped time.time() at that moment (a real camera's sensor -> host transfer is not here)."""

    def __init__(self, name: str, seed: int, fps: float = CAMERA_FPS) -> None:
        rng = np.random.default_rng(seed)
        self.name, self.period_s = name, 1.0 / fps
        self._pool = [rng.integers(0, 256, (HEIGHT, WIDTH, 3), np.uint8) for _ in range(POOL)]
        self._frame: Frame | None = None
        self._stopped = threading.Event()
        self._stopped.set()
        self._thread: threading.Thread | None = None
        self.captured = 0

    def start(self) -> None:
        self._stopped.clear()
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        due = time.monotonic()
        while not self._stopped.is_set():
            due += self.period_s
            delay = due - time.monotonic()
            if delay > 0:
                self._stopped.wait(delay)
            elif delay < -self.period_s:  # starved for over a frame: drop the missed ones
                due = time.monotonic()
            i = self.captured
            self._frame = Frame(self._pool[i % POOL], None, time.time(), i, "system_time")
            self.captured += 1

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def latest(self) -> Frame | None:
        if self._stopped.is_set():
            raise CameraNotStarted(f"{self.name}: latest() before start()")
        return self._frame

    def intrinsics(self) -> CameraIntrinsics:
        return CameraIntrinsics(WIDTH, HEIGHT, 615.0, 615.0, (WIDTH - 1) / 2, (HEIGHT - 1) / 2)


class TimedCameraNode(CameraNode):
    """CameraNode recording, per frame sent, (capture stamp, publish() start, publish() end)."""

    def __init__(self, transport: Transport, camera: SyntheticCamera, params: CameraNodeParams) -> None:
        self.sent: list[tuple[float, float, float]] = []  # before super(): its timer may fire early
        super().__init__(transport, camera, params)

    def publish(self, frame: Frame) -> None:
        t0 = time.time()
        super().publish(frame)
        self.sent.append((frame.stamp, t0, time.time()))


class RecordingArm:
    """The twin's SimArm, each move_to_pose timed: (time.time() at the call, command stamp)."""

    def __init__(self, arm: Any) -> None:
        self._arm = arm
        self.calls: list[tuple[float, float]] = []
        self.holds = 0

    def move_to_pose(self, command: PoseCommand) -> None:
        self.calls.append((time.time(), command.stamp))
        self._arm.move_to_pose(command)

    def hold(self) -> None:
        self.holds += 1
        self._arm.hold()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._arm, name)


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
            tr = self.transports["arm"] = make_transport("arm_node")
            node = self.nodes["arm"] = ArmNode(tr, self.arm, safety, ArmNodeParams(), clock=time.time)
            self.arm_queued: list[tuple[float, float]] = []  # target_pose reaching its queue
            time_pushes(tr, node._on_target_pose, self.arm_queued)
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
class _TimedPublisher:
    def __init__(self, inner: Any, log: list[tuple[float, float, float]]) -> None:
        self._inner, self._log = inner, log

    def publish(self, msg: Any) -> None:
        t0 = time.time()
        self._inner.publish(msg)
        self._log.append((codec.stamp_from_time(msg.header.stamp), t0, time.time()))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class TimedTransport:
    """The env's transport, timing what robot_env.py does not expose: each image's callback
    starting on the spin thread (arrivals[topic]: (time, capture stamp)), each image reaching the
    transport's executor queue, decoded, on the middleware's thread (queued[topic], likewise), and
    each target_pose publish (commands: (stamp, publish start, publish end)).

    images: when given, image topics are read from it (an in-process bus) and everything else
    from `inner` (the arm over zenoh), so only the images' hand-over differs between cases."""

    def __init__(self, inner: Transport, images: Transport | None = None) -> None:
        self._inner, self._images = inner, images
        self.spun = [inner] if images is None else [inner, images]
        self.arrivals: dict[str, list[tuple[float, float]]] = {}
        self.queued: dict[str, list[tuple[float, float]]] = {}
        self.commands: list[tuple[float, float, float]] = []

    def subscribe(
        self, topic: str, msg_type: str, callback: Callable[[Any], None], qos: QoS = RELIABLE
    ) -> Any:
        if msg_type != codec.IMAGE:
            return self._inner.subscribe(topic, msg_type, callback, qos)
        log, queued = self.arrivals.setdefault(topic, []), self.queued.setdefault(topic, [])

        def timed(msg: Any) -> None:
            log.append((time.time(), codec.stamp_from_time(msg.header.stamp)))
            callback(msg)

        transport = self._images or self._inner
        handle = transport.subscribe(topic, msg_type, timed, qos)
        time_pushes(transport, timed, queued)
        return handle

    def create_publisher(self, topic: str, msg_type: str, qos: QoS = RELIABLE) -> Any:
        publisher = self._inner.create_publisher(topic, msg_type, qos)
        return _TimedPublisher(publisher, self.commands) if msg_type == codec.POSE_STAMPED else publisher

    def shutdown(self) -> None:
        for transport in self.spun:
            transport.shutdown()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def cpu_seconds() -> float:
    """User + system CPU time of this process so far, all threads (zenoh's included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def image_topic(camera: str) -> str:
    return f"/{camera}/color/image_raw"


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


# ---------------------------------------------------------------- analysis
def stats(seconds: Sequence[float] | np.ndarray) -> dict[str, float]:
    """ms: p50, p99, max (and n) of durations given in s."""
    a = 1e3 * np.asarray(seconds, dtype=np.float64)
    if not a.size:
        return {"n": 0, "p50": math.nan, "p99": math.nan, "max": math.nan}
    return {
        "n": int(a.size),
        "p50": float(np.percentile(a, 50)),
        "p99": float(np.percentile(a, 99)),
        "max": float(a.max()),
    }


def match(keys: np.ndarray, queries: np.ndarray, tol: float = 1e-5) -> np.ndarray:
    """Index into keys of each query's equal stamp (to tol s: the CDR round trip), else -1."""
    if keys.size == 0:
        return np.full(queries.shape, -1)
    order = np.argsort(keys)
    k = keys[order]
    left = np.searchsorted(k, queries).clip(1, k.size) - 1  # the neighbours of each query
    right = np.minimum(left + 1, k.size - 1)
    best = np.where(np.abs(queries - k[left]) <= np.abs(queries - k[right]), left, right)
    return np.where(np.abs(k[best] - queries) <= tol, order[best], -1)


def _in(stamps: np.ndarray, windows: Sequence[Sequence[float]]) -> np.ndarray:
    """Which stamps fall in one of the stepping windows (a reset's scripted move does not)."""
    mask = np.zeros(stamps.shape, bool)
    for start, end in windows:
        mask |= (stamps >= start) & (stamps <= end)
    return mask


def _rows(records: Sequence[Sequence[float]], width: int) -> np.ndarray:
    return np.asarray(records, np.float64).reshape(-1, width)


def observation_samples(raw: dict[str, Any]) -> dict[str, Any]:
    """Per camera: lists of durations (s) and counts of frames, from one run."""
    actor, robot = raw["actor"], raw["robot"]
    out: dict[str, Any] = {}
    for cam, rec in robot["cameras"].items():
        topic = image_topic(cam)
        called = _rows(actor["arrivals"].get(topic, []), 2)
        queued = _rows(actor["queued"].get(topic, []), 2)
        sent = _rows(rec["sent"], 3)
        at_queue = match(sent[:, 0], queued[:, 1])  # which frame each queue push was
        at_call = match(queued[:, 1], called[:, 1])
        q, c = at_queue >= 0, at_call >= 0
        out[cam] = {
            "obs_age": actor["obs_age"][cam],
            "delivery": (called[:, 0] - called[:, 1]).tolist(),
            "poll_wait": (sent[:, 1] - sent[:, 0]).tolist(),
            "publish_call": (sent[:, 2] - sent[:, 1]).tolist(),
            "publish_to_queue": (queued[q, 0] - sent[at_queue[q], 1]).tolist(),
            "queue_to_callback": (called[c, 0] - queued[at_call[c], 0]).tolist(),
            "direct_latest": actor["direct"].get(cam, []),
            "captured": rec["captured"],
            "published": len(sent),
            "queued": len(queued),
            "called_back": len(called),
        }
    return out


def command_samples(raw: dict[str, Any], hz: float) -> dict[str, Any]:
    """Durations (s) and counts of the commands sent in the stepping windows of one run."""
    actor, robot = raw["actor"], raw["robot"]
    windows = actor["windows"]
    pubs, calls, queued = (
        _rows(actor["commands"], 3),
        _rows(robot["driver_calls"], 2),
        _rows(robot["arm_queued"], 2),
    )
    pubs, calls, queued = (
        pubs[_in(pubs[:, 0], windows)],
        calls[_in(calls[:, 1], windows)],
        queued[_in(queued[:, 1], windows)],
    )
    at_queue = match(pubs[:, 0], queued[:, 1])
    q = at_queue >= 0
    jitter, actor_jitter = [], []
    for start, end in windows:  # intervals within a window: a reset is no control period
        jitter += np.diff(np.sort(calls[(calls[:, 1] >= start) & (calls[:, 1] <= end), 0])).tolist()
        actor_jitter += np.diff(pubs[(pubs[:, 0] >= start) & (pubs[:, 0] <= end), 0]).tolist()
    counters = robot["arm_counters"]
    return {
        "latency": (calls[:, 0] - calls[:, 1]).tolist(),
        "to_arm_queue": (queued[:, 0] - queued[:, 1]).tolist(),  # publish stamp -> arm node's queue
        "publish_call": (pubs[q, 2] - pubs[q, 1]).tolist(),
        "jitter": np.abs(np.array(jitter) - 1.0 / hz).tolist(),
        "actor_jitter": np.abs(np.array(actor_jitter) - 1.0 / hz).tolist(),
        "published": len(pubs),
        "queued_at_arm": len(queued),
        "reached_driver": len(calls),
        "passed": counters.get("passed", 0),  # whole run, reset moves included
        "clipped": counters.get("clipped", 0),
        "held": counters.get("held", 0),
        "late_ticks": actor["env_counters"]["late_ticks"],
        "safe_stops": actor["timeouts"],
    }


def pool(parts: Sequence[Any]) -> Any:
    """The runs of one case together: durations -> stats over all samples, counts -> sums."""
    first = parts[0]
    if isinstance(first, dict):
        return {key: pool([part[key] for part in parts]) for key in first}
    if isinstance(first, list):
        return stats([x for part in parts for x in part])
    return sum(parts)


def codec_costs(reps: int = 30) -> dict[str, float]:
    """Median ms of each step one 640x480 rgb8 frame goes through, alone on one thread."""
    cdr = codec.get_codec()
    frame = np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), np.uint8)
    steps: dict[str, list[float]] = {
        k: [] for k in ("image_msg", "CDR encode", "CDR decode", "image_from_msg")
    }
    for _ in range(reps):
        t0 = time.perf_counter()
        msg = codec.image_msg(frame, time.time(), "cam")
        t1 = time.perf_counter()
        payload = cdr.encode(msg, codec.IMAGE)
        t2 = time.perf_counter()
        decoded = cdr.decode(payload, codec.IMAGE)
        t3 = time.perf_counter()
        codec.image_from_msg(decoded)
        t4 = time.perf_counter()
        for name, dt in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            steps[name].append(dt)
    return {name: 1e3 * float(np.median(v)) for name, v in steps.items()} | {"payload_mb": len(payload) / 1e6}


# ---------------------------------------------------------------- report
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


P3 = ("p50", "p99", "max")


def _pp(s: dict[str, float], keys: Sequence[str] = ("p50", "p99")) -> str:
    return " / ".join(f"{s[k]:.1f}" for k in keys) if s["n"] else "-"


def _ratio(z: dict[str, float], i: dict[str, float], q: str) -> str:
    return f"{z[q] / i[q]:.2f}" if z["n"] and i["n"] else "-"


def _observation_lines(r: dict[str, Any]) -> list[str]:
    cases = {c["path"]: c for c in r["cases"] if "observation" in c}
    rows = []
    for path, case in cases.items():
        for cam, o in case["observation"].items():
            cells = [path, cam, _pp(o["obs_age"]), _pp(o["delivery"]), f"{o['poll_wait']['p50']:.1f}"]
            cells += [_pp(o[m]) for m in ("publish_call", "publish_to_queue", "queue_to_callback")]
            cells += [f"{o['captured']} / {o['published']} / {o['queued']} / {o['called_back']}"]
            rows.append("| " + " | ".join([*cells, str(case["command"]["safe_stops"])]) + " |")
    for cam, o in cases.get("in process", {}).get("observation", {}).items():
        rows.append(
            f"| camera.latest() after each step (floor) | {cam} | {_pp(o['direct_latest'])} |" + " |" * 7
        )
    ratios = []
    for cam, z in cases.get("zenoh", {}).get("observation", {}).items():
        i = cases.get("in process", {}).get("observation", {}).get(cam)
        if i is not None:
            metrics = ("obs_age", "delivery", "publish_to_queue")
            ratios.append(
                f"| {cam} | "
                + " | ".join(_ratio(z[m], i[m], q) for m in metrics for q in ("p50", "p99"))
                + " |"
            )
    return [
        "Observation latency, ms (p50 / p99). Age: the env's observation assembly - capture stamp "
        "(info['obs_age_s']; only observations the env accepted, i.e. younger than 0.25 s). Delivery: "
        "the env's image callback starting (its spin thread) - capture stamp. Poll wait: capture -> "
        "the node's 30 Hz timer publishing it. publish(): the node's call (Image + CameraInfo; in "
        "process it includes the subscriber's decode). publish -> queued: until the decoded message "
        "is in the env transport's keep-last queue (depth 5; zenoh: pushed from zenoh's thread). "
        "queued -> callback: until the env's spin thread runs it. Frames: captured by the camera / "
        "published by the node / queued at the env / run by the env's callback. Safe stops: "
        "ObservationTimeouts (a stale topic).",
        "",
        "| path | camera | obs age | delivery | poll wait p50 | publish() | publish -> queued | "
        "queued -> callback | frames captured / published / queued / called back | safe stops |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "zenoh / in process, same camera:",
        "",
        "| camera | age p50 | age p99 | delivery p50 | delivery p99 | publish -> queued p50 | p99 |",
        "|---|---|---|---|---|---|---|",
        *ratios,
    ]


def _command_lines(r: dict[str, Any]) -> list[str]:
    rows, cpu_rows = [], []
    for c in r["cases"]:
        m = c["command"]
        path = f"zenoh, images {c['path']}" if c["cameras"] else c["path"]  # the arm: see run_case
        loads = ", ".join(f"{x:.0f}" for x in c["load_avg_1m_at_runs"])
        rows.append(
            f"| {path} | {c['control_hz']:g} | {c['cameras']} | {_pp(m['latency'], P3)} | "
            f"{_pp(m['to_arm_queue'])} | {_pp(m['jitter'], P3)} | {_pp(m['actor_jitter'], P3)} | "
            f"{m['published']} / {m['queued_at_arm']} / {m['reached_driver']} | {m['passed']} / "
            f"{m['clipped']} / {m['held']} | {m['late_ticks']} / {m['safe_stops']} | {loads} |"
        )
        cpu = ", ".join(f"{k} {v:.2f}" for k, v in c["cpu_cores"].items())
        cpu_rows.append(f"| {c['path']} | {c['control_hz']:g} | {c['cameras']} | {cpu} |")
    return [
        "Command latency (the driver's move_to_pose call - the env's publish stamp; -> arm queue: "
        "until the decoded target_pose is in the arm node's queue, reliable keep-last depth 1) and "
        "control-period jitter (|interval between driver calls - period|; actor: between its publish "
        "stamps), ms, over the stepping windows (reset moves left out). Commands: published by the "
        "env / queued at the arm node / reaching the driver; passed / clipped / held: the arm node's "
        "counters over the whole run (reset moves included). Late ticks / safe stops: the env's. "
        "Load: the 1-min load average at the start of each run.",
        "",
        "| path | control Hz | cameras | latency p50 / p99 / max | -> arm queue | driver jitter "
        "p50 / p99 / max | actor jitter p50 / p99 / max | commands | passed / clipped / held | "
        "late ticks / safe stops | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Cores each process kept busy (CPU s per wall s, all its threads) while stepping (the env's "
        "process) or serving (the others):",
        "",
        "| path | control Hz | cameras | cores |",
        "|---|---|---|---|",
        *cpu_rows,
    ]


def markdown(r: dict[str, Any]) -> str:
    load, failed = r["load_avg_1m"], len(r["failed_runs"])
    intro = (
        f"Robot side: the twin's ArmNode (SimArm, pick_cube, 500 Hz physics) and {len(CAMERAS)} synthetic "
        f"cameras, {WIDTH}x{HEIGHT} rgb8 ({r['payload_mb']:.2f} MB per Image), {CAMERA_FPS:g} fps (a 30 fps "
        "camera whose clock runs 0.33% slow, so every poll phase occurs), each frame taken from a pool "
        "of pre-made noise images and stamped time.time() at 'capture' (a real camera's exposure and "
        "sensor -> host transfer come on top). Each camera behind a CameraNode polling at 30 Hz; every "
        "node on its own transport and spin thread, as `robot-rl bringup` runs them. Actor: RobotEnv "
        f"(image_size [{HEIGHT}, {WIDTH}], privileged=false, no success topic, reset_scene off, "
        "max_obs_age_s 0.25) stepping slow sine actions. *zenoh*: the arm node in one process and the "
        "two camera nodes in another (`--serve`), loopback TCP. *in process*, with cameras: the cameras "
        "and their nodes in the env's process on an InprocBus (CDR encode/decode included), the arm "
        "still over zenoh, so only the images' hand-over differs; without cameras: the arm node and "
        f"the env on one InprocBus. {r['seconds_per_case']:g} s per case, in {REPEATS} runs ordered ABBA "
        "between the paths (a trend in the machine's load hits both alike); observation runs reset "
        f"every {EPISODE_STEPS} steps so the env's tick phase is redrawn. Loopback on one machine: "
        "every clock is the same time.time()."
    )
    codec_line = ", ".join(f"{k} {v:.2f}" for k, v in r["codec_ms"].items())
    return "\n".join(
        [
            "## ros_latency: camera -> observation and actor -> arm driver, zenoh vs in-process",
            "",
            intro,
            "",
            *_observation_lines(r),
            "",
            *_command_lines(r),
            "",
            f"One 640x480 rgb8 frame through the codec, alone on one thread, median ms: {codec_line}.",
            "",
            f"Load average (1 min) at start / end: {load[0]:.1f} / {load[1]:.1f} on {os.cpu_count()} cores "
            "(other work shares this machine: its figures include waiting for a core)."
            + (
                f" Runs retried (a robot-side process did not stop; its log is in the JSON): {failed}."
                if failed
                else ""
            ),
        ]
    )


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
    table = markdown(r)
    print(table)
    cmd = f"python -m benchmarks.ros_latency {' '.join(sys.argv[1:])}".strip()
    name = "ros_latency_quick" if args.quick else "ros_latency"
    write_results(name, r, table, command=cmd, section=not args.quick)


if __name__ == "__main__":
    main()
