"""A teleop device on another machine: a TeleopReading's layout on ROS 2 topics, and RosTeleop,
the TeleopDevice that reads them back (teleop=ros), for RobotEnv or any other env.

The teleop node (robot_rl/ros/nodes/teleop_node.py) publishes, every tick, idle or not:
    teleop/twist  geometry_msgs/TwistStamped, frame "teleop": linear = (x, y, z) and angular =
                  (roll, pitch, yaw) of the reading's normalised twist, each in [-1, 1] (not m/s:
                  the consumer maps it as it maps a policy's action, drivers/teleop/base.py)
    teleop/joy    sensor_msgs/Joy, same stamp (JOY_AXES, JOY_BUTTONS):
                  axes     [0] gripper: -1 open .. +1 closed, 0 when [1] is 0
                           [1] has_gripper: 1 when [0] is a command this tick, 0 for none (keep
                               the last). A flag, not a NaN sentinel: Joy axes stay finite, as
                               every Joy consumer (rqt, joy_teleop) expects
                           [2] active: 1 while the intervention is active, else 0
                  buttons  intervene, success, failure, rerecord, estop: 1 pressed, 0 not
Both are the heartbeat: a node that stops publishing is dead, one that publishes zeros is idle.
Stamps are the node's wall clock, so the two machines' clocks must agree (chrony), as they must
for the arm node's commands.

RosTeleop judges the newest messages by their header stamps: older than max_age_s (or from more
than max_age_s in the future: clocks that disagree) means the device is lost, and poll() raises
TeleopDisconnected saying which topic is how old; the InterventionWrapper then holds the arm.
Between two polls it keeps every button press and the last gripper command it received, so a
press the node saw for one tick is not lost to a slower actor.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drivers.teleop.base import BUTTON_ROLES, Buttons, TeleopDisconnected, TeleopError, TeleopReading
from robot_rl.ros import messages, topics
from robot_rl.ros.codec import CodecError
from robot_rl.ros.connect import RosConfig, open_transport
from robot_rl.ros.transport import Subscription, Transport

log = logging.getLogger(__name__)
FRAME_ID = "teleop"
JOY_AXES = ("gripper", "has_gripper", "active")
JOY_BUTTONS = BUTTON_ROLES  # intervene, success, failure, rerecord, estop
_TOLERANCE = 1e-6  # float32 rounding of Joy axes


def reading_msgs(reading: TeleopReading, stamp_s: float, frame_id: str = FRAME_ID) -> tuple[Any, Any]:
    """(TwistStamped, Joy) of a reading, stamped stamp_s (wall clock s)."""
    twist = np.asarray(reading.twist, dtype=np.float64)
    if twist.shape != (6,) or not np.all(np.abs(twist) <= 1.0):
        raise ValueError(f"a teleop twist is 6 values in [-1, 1], got {twist.tolist()}")
    gripper = reading.gripper
    if gripper is not None and not -1.0 <= gripper <= 1.0:
        raise ValueError(f"a teleop gripper command is in [-1, 1] or None, got {gripper!r}")
    axes = [0.0 if gripper is None else float(gripper), float(gripper is not None), float(reading.active)]
    buttons = [int(getattr(reading.buttons, role)) for role in JOY_BUTTONS]
    return (
        messages.twist_stamped_msg(twist[:3], twist[3:], stamp_s, frame_id),
        messages.joy_msg(axes, buttons, stamp_s, frame_id),
    )


def _flag(value: float, what: str) -> bool:
    if value not in (0.0, 1.0):
        raise CodecError(f"teleop Joy {what} must be 0 or 1, got {value}")
    return value == 1.0


def estop_pressed(joy_msg: Any) -> bool:
    """Whether a teleop Joy has the e-stop button pressed (the arm node latches on it);
    CodecError when its buttons are not this layout's."""
    _axes, buttons, _stamp = messages.joy_from_msg(joy_msg)
    if buttons.shape != (len(JOY_BUTTONS),) or not set(buttons.tolist()) <= {0, 1}:
        raise CodecError(f"teleop Joy must have buttons {JOY_BUTTONS}, each 0 or 1, got {buttons.tolist()}")
    return bool(buttons[JOY_BUTTONS.index("estop")])


def reading_from_msgs(twist_msg: Any, joy_msg: Any) -> TeleopReading:
    """The reading two messages carry (stamp: the Joy's); CodecError naming what breaks the layout."""
    linear, angular, _ = messages.twist_from_msg(twist_msg)
    twist = np.concatenate([linear, angular])
    if not (np.all(np.isfinite(twist)) and np.all(np.abs(twist) <= 1.0 + _TOLERANCE)):
        raise CodecError(f"teleop twist must be 6 finite values in [-1, 1], got {twist.tolist()}")
    axes, buttons, stamp = messages.joy_from_msg(joy_msg)
    if axes.shape != (len(JOY_AXES),) or buttons.shape != (len(JOY_BUTTONS),):
        raise CodecError(
            f"teleop Joy must have {len(JOY_AXES)} axes {JOY_AXES} and {len(JOY_BUTTONS)} buttons "
            f"{JOY_BUTTONS}, got {axes.size} and {buttons.size}"
        )
    gripper, has_gripper, active = axes
    if abs(gripper) > 1.0 + _TOLERANCE:
        raise CodecError(f"teleop Joy gripper must be in [-1, 1], got {gripper}")
    if not set(buttons.tolist()) <= {0, 1}:
        raise CodecError(f"teleop Joy buttons must be 0 or 1, got {buttons.tolist()}")
    return TeleopReading(
        twist=np.clip(twist, -1.0, 1.0),
        gripper=float(np.clip(gripper, -1.0, 1.0)) if _flag(has_gripper, "has_gripper") else None,
        buttons=Buttons(**{role: bool(b) for role, b in zip(JOY_BUTTONS, buttons, strict=True)}),
        active=_flag(active, "active"),
        stamp=stamp,
    )


@dataclass
class RosTeleopConfig:
    """teleop=ros: a teleop node's topics, read over ROS 2. ros.connect names the machine the
    node runs on, e.g. teleop.ros.connect=[tcp/teleop-pc:7447]."""

    ros: RosConfig = field(default_factory=RosConfig)
    twist_topic: str = topics.TELEOP_TWIST.name
    joy_topic: str = topics.TELEOP_JOY.name
    max_age_s: float = 0.25  # newer than this or the device is lost (RobotEnv's max_obs_age_s)
    connect_timeout_s: float = 5.0  # start() waits this long for the node's first messages

    def __post_init__(self) -> None:
        if not (isinstance(self.max_age_s, (int, float)) and 0.0 < self.max_age_s <= 5.0):
            raise ValueError(f"teleop.max_age_s must be in (0, 5] s, got {self.max_age_s!r}")
        if not (isinstance(self.connect_timeout_s, (int, float)) and self.connect_timeout_s > 0):
            raise ValueError(f"teleop.connect_timeout_s must be > 0 s, got {self.connect_timeout_s!r}")
        if not self.twist_topic or not self.joy_topic:
            raise ValueError("teleop.twist_topic and teleop.joy_topic must be topic names")


class RosTeleop:
    """A TeleopDevice over a teleop node's topics (module docstring).

    transport: the one to subscribe on (tests: in-process); None opens one from cfg.ros at start()
    and shuts it at stop(). Between start() and stop() a thread of its own spins the transport
    (nobody else may), so messages are taken as they arrive, however slowly the env steps, and
    poll() only reads what they left. counters: twist, joy (messages received), bad_layout
    (decoded but refused; the transport counts undecodable ones in dropped_garbled), lost (polls
    that raised).
    """

    def __init__(
        self,
        cfg: RosTeleopConfig | None = None,
        transport: Transport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg or RosTeleopConfig()
        self.clock = clock
        self.counters: Counter[str] = Counter()
        self._given = transport
        self._transport: Transport | None = None
        self._subs: list[Subscription] = []
        self._spinning = threading.Event()
        self._spinner: threading.Thread | None = None
        self._lock = threading.Lock()
        self._twist: Any = None  # the newest TwistStamped
        self._twist_stamp: float | None = None
        self._reading: TeleopReading | None = None  # the newest Joy's reading with the newest twist
        self._pressed: set[str] = set()  # buttons pressed in any Joy since the last poll
        self._gripper: float | None = None  # the last gripper command since the last poll
        self._refused = ""  # why the last refused message was refused

    @property
    def newest_stamp(self) -> float | None:
        """The stamp (s) of the newest Joy taken, None before the first."""
        with self._lock:
            return None if self._reading is None else self._reading.stamp

    def start(self) -> None:
        """Subscribe and wait for the node's first fresh messages; TeleopError saying what to do
        when none come. Started again after a loss, it forgets what it had."""
        self.stop()
        self._transport = self._given or open_transport(self.cfg.ros, "teleop_client")
        self._twist, self._twist_stamp, self._reading = None, None, None
        self._pressed, self._gripper, self._refused = set(), None, ""
        self._subs = [
            topics.TELEOP_TWIST.subscribe(self._transport, self._on_twist, self.cfg.twist_topic),
            topics.TELEOP_JOY.subscribe(self._transport, self._on_joy, self.cfg.joy_topic),
        ]
        self._spinning.set()
        self._spinner = threading.Thread(target=self._spin, args=(self._transport,), daemon=True)
        self._spinner.start()
        deadline = time.monotonic() + self.cfg.connect_timeout_s
        while self._stale() is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        why = self._stale()
        if why is not None:
            self.stop()
            raise TeleopError(
                f"no teleop node answers within {self.cfg.connect_timeout_s:g} s ({why}); start one "
                f"where the device is plugged in (robot-rl bringup configs/bringup/teleop_keyboard.yaml) "
                f"and point teleop.ros.connect at that machine (now {self.cfg.ros.connect})"
            )

    def _spin(self, transport: Transport) -> None:
        while self._spinning.is_set():
            transport.spin_once(0.02)

    def stop(self) -> None:
        self._spinning.clear()
        if self._spinner is not None:
            self._spinner.join(timeout=2.0)
            self._spinner = None
        for sub in self._subs:
            sub.cancel()
        self._subs.clear()
        if self._transport is not None and self._given is None:
            self._transport.shutdown()
        self._transport = None

    def poll(self) -> TeleopReading:
        if self._transport is None:
            raise TeleopError("RosTeleop.poll() before start()")
        why = self._stale()
        if why is not None:
            self.counters["lost"] += 1
            raise TeleopDisconnected(f"teleop node lost: {why}")
        with self._lock:
            newest, pressed, gripper = self._reading, self._pressed, self._gripper
            self._pressed, self._gripper = set(), None
        assert newest is not None  # _stale() said both topics are fresh
        buttons = Buttons(**{role: getattr(newest.buttons, role) or role in pressed for role in JOY_BUTTONS})
        return TeleopReading(newest.twist, gripper, buttons, newest.active, newest.stamp)

    # ---- subscriptions ----------------------------------------------------------------------
    def _on_twist(self, msg: Any) -> None:  # on the spin thread, as _on_joy
        with self._lock:
            self.counters["twist"] += 1
            try:
                stamp = messages.twist_from_msg(msg)[2]
            except CodecError as err:
                self._refuse(err)
                return
            self._twist, self._twist_stamp = msg, stamp

    def _on_joy(self, msg: Any) -> None:
        with self._lock:
            self.counters["joy"] += 1
            if self._twist is None:
                return  # the twist of this tick is on its way
            try:
                reading = reading_from_msgs(self._twist, msg)
            except CodecError as err:  # garbled by a foreign publisher: never a command
                self._refuse(err)
                return
            self._reading = reading
            self._pressed |= {role for role in JOY_BUTTONS if getattr(reading.buttons, role)}
            if reading.gripper is not None:
                self._gripper = reading.gripper

    def _refuse(self, err: CodecError) -> None:
        self.counters["bad_layout"] += 1
        if self._refused != str(err):  # once per reason, not 50 times a second
            log.warning("teleop message refused: %s", err)
        self._refused = str(err)

    def _stale(self) -> str | None:
        """Why the newest messages cannot be trusted (None: both fresh)."""
        with self._lock:
            twist_stamp, reading, refused = self._twist_stamp, self._reading, self._refused
        why = self._why_stale(twist_stamp, None if reading is None else reading.stamp)
        if why is not None and refused:
            why += f"; {self.counters['bad_layout']} message(s) refused, the last: {refused}"
        return why

    def _why_stale(self, twist_stamp: float | None, joy_stamp: float | None) -> str | None:
        stamps = {self.cfg.twist_topic: twist_stamp, self.cfg.joy_topic: joy_stamp}
        missing = [name for name, stamp in stamps.items() if stamp is None]
        if missing:
            return f"no message on {' and '.join(missing)}"
        now = self.clock()
        for name, stamp in stamps.items():
            age = now - stamp  # type: ignore[operator]
            if age > self.cfg.max_age_s:
                return f"the newest {name} is {age:.2f} s old (max_age_s {self.cfg.max_age_s:g})"
            if age < -self.cfg.max_age_s:
                return f"{name} is stamped {-age:.2f} s in the future: sync the two machines' clocks (chrony)"
        return None
