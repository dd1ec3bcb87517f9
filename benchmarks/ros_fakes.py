"""The ros_latency benchmark's stand-ins and probes: a synthetic camera, a recording arm, and node
and transport wrappers that time what the nodes and RobotEnv do not expose.

The probes use only public interfaces: subclasses and proxies of the nodes, the arm and the
Transport, and Registration.watch_queued (robot_rl/ros/executor.py) for a message reaching a
subscription's keep-last queue. Every time is time.time(), the clock the capture and command
stamps use, so one machine's records subtract directly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from drivers.camera import CameraIntrinsics, CameraNotStarted, Frame
from drivers.safety import PoseCommand
from robot_rl.ros import codec, messages
from robot_rl.ros.executor import Registration
from robot_rl.ros.nodes.camera_node import CameraNode, CameraNodeParams
from robot_rl.ros.transport import RELIABLE, QoS, Transport

CAMERAS = ("wrist", "front")
HEIGHT, WIDTH, FPS = 480, 640, 30.0
CAMERA_FPS = FPS * (1 - 1 / 300)  # ros_latency's docstring: the poll phase sweeps every ~10 s
POOL = 4  # distinct noisy frames per camera, cycled

Stamped = list[tuple[float, float]]  # (time.time() at the event, the message's header stamp)


def image_topic(camera: str) -> str:
    return f"/{camera}/color/image_raw"


def watch_queued(handle: Any, log: Stamped) -> None:
    """Log (time, header stamp) of each message reaching handle's keep-last queue, on the
    middleware's (or publisher's) thread: splits the transport's delivery from the queue's wait."""
    if not isinstance(handle, Registration):
        raise TypeError(
            f"cannot time the queue of a {type(handle).__name__} subscription: "
            "run the benchmark on the zenoh or in-process transport"
        )
    handle.watch_queued(lambda msg: log.append((time.time(), messages.stamp_from_time(msg.header.stamp))))


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
        self.calls: Stamped = []
        self.holds = 0

    def move_to_pose(self, command: PoseCommand) -> None:
        self.calls.append((time.time(), command.stamp))
        self._arm.move_to_pose(command)

    def hold(self) -> None:
        self.holds += 1
        self._arm.hold()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._arm, name)


class QueueProbe:
    """A node's transport, logging in `queued` each message on `topic` (as the node names it)
    reaching the subscription's keep-last queue: the arm node's target_pose."""

    def __init__(self, inner: Transport, topic: str) -> None:
        self._inner, self._topic = inner, topic
        self.queued: Stamped = []

    def subscribe(
        self, topic: str, msg_type: str, callback: Callable[[Any], None], qos: QoS = RELIABLE
    ) -> Any:
        handle = self._inner.subscribe(topic, msg_type, callback, qos)
        if topic == self._topic:
            watch_queued(handle, self.queued)
        return handle

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _TimedPublisher:
    def __init__(self, inner: Any, log: list[tuple[float, float, float]]) -> None:
        self._inner, self._log = inner, log

    def publish(self, msg: Any) -> None:
        t0 = time.time()
        self._inner.publish(msg)
        self._log.append((messages.stamp_from_time(msg.header.stamp), t0, time.time()))

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
        self.arrivals: dict[str, Stamped] = {}
        self.queued: dict[str, Stamped] = {}
        self.commands: list[tuple[float, float, float]] = []

    def subscribe(
        self, topic: str, msg_type: str, callback: Callable[[Any], None], qos: QoS = RELIABLE
    ) -> Any:
        if msg_type != codec.IMAGE:
            return self._inner.subscribe(topic, msg_type, callback, qos)
        log = self.arrivals.setdefault(topic, [])

        def timed(msg: Any) -> None:
            log.append((time.time(), messages.stamp_from_time(msg.header.stamp)))
            callback(msg)

        handle = (self._images or self._inner).subscribe(topic, msg_type, timed, qos)
        watch_queued(handle, self.queued.setdefault(topic, []))
        return handle

    def create_publisher(self, topic: str, msg_type: str, qos: QoS = RELIABLE) -> Any:
        publisher = self._inner.create_publisher(topic, msg_type, qos)
        return _TimedPublisher(publisher, self.commands) if msg_type == codec.POSE_STAMPED else publisher

    def shutdown(self) -> None:
        for transport in self.spun:
            transport.shutdown()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
