"""Convert a rosbag2 recording (MCAP, or sqlite3) of the robot stack into the zarr episode store.

Time runs on the bag's log time (receive time, as `robot-rl record` and `ros2 bag record` store
it). Commands (target_pose, gripper/command) mark where a person was driving the arm: a pause in
commands longer than episode_gap_s ends one stretch of driving and the next command starts
another. Each stretch from first to last command is sampled at control_hz, starting at its first
command and going one tick past its last, so the last command is inside a step.

At tick t_k the observation is the newest message of each topic logged at or before t_k (never
one logged later). Step k pairs that observation with what the operator commanded before the next
tick, in the task contract's action layout (sim/task_spec.py), float32 in [-1, 1]:
    (dx, dy, dz) = (target_pose position at t_{k+1} - at t_k) / pos_scale, clipped
    gripper      = the gripper/command in force at t_{k+1} (-1 open, +1 closed), clipped
The state is sim.task_spec.robot_state of the arm's readings, images are uint8
[H, W, 3] (rgb8 and bgr8 as RGB, mono8 repeated to 3 channels).

A tick is unusable when an observation topic has not arrived yet or is older than max_obs_age_s,
or no command has arrived yet; an unusable tick ends the episode being built (an episode has no
holes in time) and is counted in the summary by reason. With a success topic, reward is 1 on the
step after which task/success reads true and the episode ends there (terminated, as in the sim
tasks); ticks while it stays true start nothing. Otherwise episodes end truncated, reward 0.
Other step keys as demos are stored (robot_rl/runtime/demos.py): policy_action = action,
policy_version -1 (no policy acted), intervened = config.intervened (default False: a demo is
not a correction of a running policy), t_obs = the tick's log time in s.

The store is written under `<store>.partial` and renamed when every episode is in, so a failed
conversion never leaves a store that looks complete.
"""

from __future__ import annotations

import math
import re
import shutil
import struct
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.rosbag2 import Reader, ReaderError

from robot_rl.data.episode_store import EpisodeStore
from robot_rl.ros import codec, messages
from robot_rl.ros.codec import DEFAULT_DISTRO, CodecError, Distro, get_codec
from robot_rl.ros.rmw_zenoh_keys import fully_qualified_name
from robot_rl.ros.topics import (
    CURRENT_POSE,
    GRIPPER_COMMAND,
    GRIPPER_STATE,
    JOINT_STATES,
    OBJECT_POSE,
    ROBOT_TOPICS,
    SUCCESS,
    TARGET_POSE,
)
from robot_rl.transition import IMAGE_PREFIX
from sim.task_spec import POS_SCALE, robot_state

_CAMERA_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# What rosbags raises on a damaged file besides ReaderError: a record cut short or garbled, or a
# garbled length it tries to seek past (OverflowError) or read (MemoryError).
_DAMAGE = (
    ReaderError,
    struct.error,
    EOFError,
    TypeError,
    IndexError,
    UnicodeDecodeError,
    OverflowError,
    MemoryError,
)

_TYPES = {role: t.msg_type for role, t in ROBOT_TOPICS.items()}  # cameras: Image


class BagError(ValueError):
    """A bag that cannot be converted: unreadable, damaged, or without the topics it needs."""


@dataclass(frozen=True)
class ConvertConfig:
    """How a bag becomes episodes. Topic names are the robot stack's defaults (RobotEnv's), and
    relative names are taken from the root namespace."""

    control_hz: float = 10.0  # ticks per second, as the sim tasks and RobotEnv
    pos_scale: float = POS_SCALE  # m of target motion per tick at |action| = 1, as the sim tasks
    episode_gap_s: float = 1.0  # no command for longer than this ends an episode
    max_obs_age_s: float = 0.5  # an observation older than this at a tick makes the tick unusable
    cameras: dict[str, str] = field(default_factory=dict)  # camera name -> its image topic
    with_object: bool = False  # object pose in the state (RobotEnv's privileged=true)
    n_joints: int | None = None  # first n joints of joint_states, as RobotEnv; None: all of them
    intervened: bool = False  # True when the bag records corrections of a running policy
    base_frame: str = "base"  # poses in another frame ("" is taken as this one) are refused
    distro: Distro = DEFAULT_DISTRO
    joint_states_topic: str = JOINT_STATES.name
    current_pose_topic: str = CURRENT_POSE.name
    gripper_state_topic: str = GRIPPER_STATE.name  # one joint: opening width in m
    target_pose_topic: str = TARGET_POSE.name
    gripper_command_topic: str = GRIPPER_COMMAND.name
    object_pose_topic: str = OBJECT_POSE.name
    success_topic: str = SUCCESS.name  # std_msgs/Bool, used when in the bag; "" -> never

    def __post_init__(self) -> None:
        if not 0 < self.control_hz <= 1000:
            raise ValueError(f"control_hz must be in (0, 1000], got {self.control_hz!r}")
        for name in ("pos_scale", "max_obs_age_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if not self.episode_gap_s >= 1.0 / self.control_hz:
            raise ValueError(
                f"episode_gap_s must be at least one control tick ({1.0 / self.control_hz:g} s), "
                f"got {self.episode_gap_s!r}"
            )
        if self.n_joints is not None and self.n_joints < 1:
            raise ValueError(f"n_joints must be >= 1 or None, got {self.n_joints!r}")
        if self.distro not in ("humble", "jazzy"):
            raise ValueError(f"distro must be humble or jazzy, got {self.distro!r}")
        for camera in self.cameras:
            if not _CAMERA_NAME.match(camera):
                raise ValueError(f"camera name {camera!r} must be letters, digits and _ (a zarr key)")
        self.topics()  # every name must be a valid ROS 2 name

    def topics(self) -> dict[str, tuple[str, str]]:
        """role -> (fully qualified topic, message type) of every topic the conversion reads."""
        roles = ["joint_states", "current_pose", "gripper_state", "target_pose", "gripper_command"]
        roles += ["object_pose"] * self.with_object + ["success"] * bool(self.success_topic)
        named = {role: (getattr(self, f"{role}_topic"), _TYPES[role]) for role in roles}
        named |= {IMAGE_PREFIX + cam: (topic, codec.IMAGE) for cam, topic in self.cameras.items()}
        return {role: (fully_qualified_name(topic), msg_type) for role, (topic, msg_type) in named.items()}


@dataclass
class ConvertSummary:
    """What a conversion wrote, and what it could not use."""

    bag: str
    store: str
    episodes: int = 0
    steps: int = 0
    successes: int = 0
    clipped_actions: int = 0  # steps whose target moved more than pos_scale along an axis
    topic_counts: dict[str, int] = field(default_factory=dict)  # messages in the bag per topic read
    skipped_ticks: Counter[str] = field(default_factory=Counter)  # reason -> ticks

    def text(self) -> str:
        lines = [
            f"{self.bag} -> {self.store}: {self.episodes} episodes, {self.steps} steps, "
            f"{self.successes} successful, {self.clipped_actions} steps with a clipped action",
            "messages: " + ", ".join(f"{t} {n}" for t, n in self.topic_counts.items()),
        ]
        if self.skipped_ticks:
            lines.append("skipped ticks: " + ", ".join(f"{r}: {n}" for r, n in self.skipped_ticks.items()))
        return "\n".join(lines)


@dataclass
class _Tick:
    """What a usable tick holds."""

    t_s: float
    state: np.ndarray
    images: dict[str, np.ndarray]
    target_pos: np.ndarray
    gripper_command: float
    success: bool


def mcap_to_zarr(
    bag_path: str | Path,
    store_path: str | Path,
    config: ConvertConfig | None = None,
    print_line: Callable[[str], None] | None = None,
) -> ConvertSummary:
    """Convert the bag at bag_path into a new episode store at store_path (see the module doc).

    BagError for a bag that is unreadable, damaged, lacks a topic the config needs, carries it with
    another type, or yields no episode; FileExistsError when store_path exists.
    """
    cfg = config or ConvertConfig()
    bag, store = Path(bag_path), Path(store_path)
    if store.exists():
        raise FileExistsError(f"{store} exists; mcap2zarr writes a new store, never into an old one")
    tmp = store.with_name(store.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)  # a conversion that died before; never complete
    summary = ConvertSummary(str(bag), str(store))
    try:
        with _open_bag(bag) as reader:
            topics = _check_topics(reader, cfg, bag, summary)
            ticks = _ticks(_command_times(reader, topics, bag), cfg)
            out = EpisodeStore(tmp, mode="w")
            _write_episodes(reader, bag, topics, ticks, cfg, out, summary, print_line)
        if summary.episodes == 0:
            raise BagError(f"{bag} yields no episode of at least one step; {summary.text()}")
        out.attrs["source"] = {"bag": str(bag), "converter": __name__, "config": asdict(cfg)}
        tmp.rename(store)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary


@contextmanager
def _open_bag(bag: Path) -> Iterator[Reader]:
    if not (bag / "metadata.yaml").is_file():
        if bag.is_dir() and any(bag.glob("*.mcap")):
            raise BagError(
                f"{bag} has no metadata.yaml: its recorder never closed it (killed?); "
                f"run `robot-rl record --recover {bag}` first"
            )
        raise BagError(f"{bag} is not a rosbag2 bag directory (no metadata.yaml)")
    reader = Reader(bag)
    try:
        reader.open()
    except (*_DAMAGE, OSError, ValueError) as err:
        raise BagError(f"cannot read bag {bag}: {type(err).__name__}: {err}") from err
    try:
        yield reader
    finally:
        reader.close()


def _check_topics(reader: Reader, cfg: ConvertConfig, bag: Path, summary: ConvertSummary) -> dict[str, Any]:
    """role -> the bag's connections of that role's topic; BagError naming what is missing or
    has another type. The success topic is optional: without it, rewards are 0."""
    by_topic: dict[str, list[Any]] = {}
    for connection in reader.connections:
        by_topic.setdefault(connection.topic, []).append(connection)
    found: dict[str, Any] = {}
    missing = []
    for role, (topic, msg_type) in cfg.topics().items():
        connections = by_topic.get(topic, [])
        if not sum(c.msgcount for c in connections):
            if role != "success":
                missing.append(f"{topic} ({role})")
            continue
        for c in connections:
            if c.msgtype != msg_type:
                raise BagError(f"{topic} in {bag} carries {c.msgtype}; the converter reads it as {msg_type}")
        found[role] = connections
        summary.topic_counts[topic] = sum(c.msgcount for c in connections)
    if missing:
        raise BagError(
            f"{bag} has no messages on {', '.join(missing)}; its topics: {sorted(by_topic)}. "
            "Name the right topics in the config (mcap2zarr --topic ROLE=NAME / --camera NAME=TOPIC)"
        )
    return found


def _messages(reader: Reader, connections: list[Any], bag: Path) -> Iterator[tuple[str, int, bytes]]:
    """(topic, log time ns, CDR bytes) in log-time order; BagError when the file is damaged."""
    try:
        for connection, log_ns, raw in reader.messages(connections=connections):
            yield connection.topic, log_ns, bytes(raw)
    except (*_DAMAGE, ValueError) as err:
        raise BagError(f"bag {bag} is damaged: {type(err).__name__}: {err}") from err


def _command_times(reader: Reader, topics: dict[str, Any], bag: Path) -> np.ndarray:
    commands = [*topics["target_pose"], *topics["gripper_command"]]
    return np.sort(np.fromiter((t for _, t, _ in _messages(reader, commands, bag)), dtype=np.int64))


def _ticks(command_ns: np.ndarray, cfg: ConvertConfig) -> list[tuple[int, int]]:
    """(stretch index, tick ns) of every tick: stretches of commands split at gaps longer than
    episode_gap_s, each sampled from its first command to one tick past its last."""
    if not command_ns.size:
        raise BagError("the bag holds no command (target_pose, gripper/command)")
    dt_ns = 1e9 / cfg.control_hz
    breaks = np.flatnonzero(np.diff(command_ns) > cfg.episode_gap_s * 1e9) + 1
    ticks = []
    for i, stretch in enumerate(np.split(command_ns, breaks)):
        start, end = int(stretch[0]), int(stretch[-1])
        n = math.ceil((end - start) / dt_ns)
        ticks += [(i, start + round(k * dt_ns)) for k in range(n + 1)]
    return ticks


def _snapshots(
    messages: Iterator[tuple[str, int, bytes]], ticks: list[tuple[int, int]]
) -> Iterator[tuple[int, int, dict[str, tuple[int, bytes]]]]:
    """(stretch, tick ns, newest (log ns, bytes) per topic logged at or before the tick)."""
    latest: dict[str, tuple[int, bytes]] = {}
    i = 0
    for topic, log_ns, raw in messages:
        while i < len(ticks) and ticks[i][1] < log_ns:
            yield ticks[i][0], ticks[i][1], dict(latest)
            i += 1
        if i == len(ticks):
            return
        latest[topic] = (log_ns, raw)
    for stretch, tick_ns in ticks[i:]:
        yield stretch, tick_ns, dict(latest)


def _write_episodes(
    reader: Reader,
    bag: Path,
    topics: dict[str, Any],
    ticks: list[tuple[int, int]],
    cfg: ConvertConfig,
    store: EpisodeStore,
    summary: ConvertSummary,
    print_line: Callable[[str], None] | None,
) -> None:
    connections = [c for cs in topics.values() for c in cs]
    read = _TickReader(cfg, {role: cs[0].topic for role, cs in topics.items()})
    snapshots = _snapshots(_messages(reader, connections, bag), ticks)
    for _stretch, group in groupby(snapshots, key=lambda s: s[0]):
        # lazily: only the episode being built is held in memory, not the whole stretch
        ticks_read = (read(t, latest) for _, t, latest in group)
        for steps, final in _episodes(ticks_read, cfg, summary):
            store.append_episode(steps, final)
            summary.episodes += 1
            summary.steps += len(steps["action"])
            summary.successes += bool(steps["terminated"][-1])
            if print_line:
                print_line(f"episode {summary.episodes}: {len(steps['action'])} steps")


class _TickReader:
    """Decodes the newest messages at a tick into a _Tick, or the reason the tick is unusable."""

    def __init__(self, cfg: ConvertConfig, topic_of: dict[str, str]) -> None:
        self.cfg, self.topic_of = cfg, topic_of
        self.codec = get_codec(cfg.distro)
        # topic -> (log ns, message) of the newest decoded: a slow topic's message serves many ticks
        self._decoded: dict[str, tuple[int, Any]] = {}
        observed = ["joint_states", "current_pose", "gripper_state", "object_pose"]
        self.observed = [r for r in topic_of if r in observed or r.startswith(IMAGE_PREFIX)]

    def _msg(self, role: str, latest: dict[str, tuple[int, bytes]]) -> Any:
        topic = self.topic_of[role]
        log_ns, raw = latest[topic]
        if self._decoded.get(topic, (None,))[0] != log_ns:
            msg_type = codec.IMAGE if role.startswith(IMAGE_PREFIX) else _TYPES[role]
            try:
                self._decoded[topic] = (log_ns, self.codec.decode(raw, msg_type))
            except CodecError as err:
                raise BagError(f"{topic} message logged at {log_ns * 1e-9:.3f} s: {err}") from err
        return self._decoded[topic][1]

    def __call__(self, tick_ns: int, latest: dict[str, tuple[int, bytes]]) -> _Tick | str:
        for role in [*self.observed, "target_pose", "gripper_command"]:
            topic = self.topic_of[role]
            if topic not in latest:
                return f"no {topic} yet"
            if role in self.observed and tick_ns - latest[topic][0] > self.cfg.max_obs_age_s * 1e9:
                return f"{topic} older than {self.cfg.max_obs_age_s:g} s"
        try:
            return self._tick(tick_ns, latest)
        except BagError:
            raise
        except ValueError as err:  # CodecError too: a message that makes no sense for the robot
            raise BagError(f"tick at {tick_ns * 1e-9:.3f} s (bag log time): {err}") from err

    def _tick(self, tick_ns: int, latest: dict[str, tuple[int, bytes]]) -> _Tick:
        _, q, dq, _ = messages.joint_state_from_msg(self._msg("joint_states", latest))
        n = self.cfg.n_joints or len(q)
        if len(q) < n:
            raise ValueError(f"joint_states carries {len(q)} joints, the config asks for {n}")
        _, width, _, _ = messages.joint_state_from_msg(self._msg("gripper_state", latest))
        if width.size < 1:
            raise ValueError("gripper joint_states has no position")
        ee_pos, ee_quat = self._pose("current_pose", latest)
        obj = self._pose("object_pose", latest) if self.cfg.with_object else None
        cameras = [role for role in self.observed if role.startswith(IMAGE_PREFIX)]
        success = "success" in self.topic_of and self.topic_of["success"] in latest
        return _Tick(
            t_s=tick_ns * 1e-9,
            state=robot_state(ee_pos, ee_quat, float(width[0]), q[:n], dq[:n], obj),
            images={role[len(IMAGE_PREFIX) :]: self._image(role, latest) for role in cameras},
            target_pos=self._pose("target_pose", latest)[0],
            gripper_command=messages.float64_from_msg(self._msg("gripper_command", latest)),
            success=success and messages.bool_from_msg(self._msg("success", latest)),
        )

    def _pose(self, role: str, latest: dict[str, tuple[int, bytes]]) -> tuple[np.ndarray, np.ndarray]:
        msg = self._msg(role, latest)
        if msg.header.frame_id not in ("", self.cfg.base_frame):
            raise ValueError(
                f"{self.topic_of[role]} is in frame {msg.header.frame_id!r}, expected {self.cfg.base_frame!r}"
            )
        position, quat, _ = messages.pose_from_msg(msg)
        return position, quat

    def _image(self, role: str, latest: dict[str, tuple[int, bytes]]) -> np.ndarray:
        frame, _ = messages.image_from_msg(self._msg(role, latest))
        if frame.dtype != np.uint8:
            raise ValueError(
                f"{self.topic_of[role]} is {frame.dtype}; only color images (rgb8, bgr8, mono8) convert"
            )
        return np.repeat(frame[:, :, None], 3, axis=2) if frame.ndim == 2 else frame


def _episodes(
    ticks: Iterable[_Tick | str], cfg: ConvertConfig, summary: ConvertSummary
) -> Iterator[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
    """Episodes of one stretch: runs of usable ticks, each ended by an unusable tick, by success,
    or by the end of the stretch. A run of one tick has no step and is counted as skipped."""
    run: list[_Tick] = []

    def finish() -> Iterator[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
        if len(run) == 1:
            summary.skipped_ticks["episode of a single tick"] += 1
        elif run:
            yield _episode(run, cfg, summary)
        run.clear()

    for tick in ticks:
        if isinstance(tick, str):
            yield from finish()
            summary.skipped_ticks[tick] += 1
        elif not run and tick.success:
            summary.skipped_ticks["task already succeeded"] += 1
        else:
            run.append(tick)
            if tick.success:
                yield from finish()
    yield from finish()


def _episode(
    run: list[_Tick], cfg: ConvertConfig, summary: ConvertSummary
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Steps and final observation of a run of usable ticks (len(run) - 1 steps)."""
    t = len(run) - 1
    for cam in run[0].images:
        shapes = {tick.images[cam].shape for tick in run}
        if len(shapes) > 1:
            raise BagError(f"camera {cam} changes size within an episode near {run[0].t_s:.3f} s: {shapes}")
    target = np.stack([tick.target_pos for tick in run])
    delta = np.diff(target, axis=0) / cfg.pos_scale
    summary.clipped_actions += int(np.any(np.abs(delta) > 1.0, axis=1).sum())
    gripper = np.array([tick.gripper_command for tick in run[1:]])[:, None]
    action = np.clip(np.concatenate([delta, gripper], axis=1), -1.0, 1.0).astype(np.float32)
    success = np.array([tick.success for tick in run[1:]])
    last = np.arange(t) == t - 1
    steps = {
        "state": np.stack([tick.state for tick in run[:-1]]),
        **{IMAGE_PREFIX + cam: np.stack([tick.images[cam] for tick in run[:-1]]) for cam in run[0].images},
        "action": action,
        "policy_action": action.copy(),
        "reward": success.astype(np.float32),
        "terminated": success,
        "truncated": last & ~success,
        "intervened": np.full(t, cfg.intervened),
        "policy_version": np.full(t, -1, np.int64),
        "t_obs": np.array([tick.t_s for tick in run[:-1]], np.float64),
    }
    final = {"state": run[-1].state, **{IMAGE_PREFIX + cam: img for cam, img in run[-1].images.items()}}
    return steps, final
