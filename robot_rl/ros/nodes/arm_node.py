"""Arm node: an Arm driver behind ROS 2 topics, with the SafetyFilter on every command path.

Names follow crisp_controllers (a Cartesian controller stack for ROS 2 arms), so a policy client
written against it drives this node unchanged (names and types: robot_rl/ros/topics.py): it
publishes `joint_states` (JointState) and `current_pose` (PoseStamped) and follows `target_pose`
(PoseStamped) and `target_twist` (TwistStamped). The gripper: `gripper/command` (std_msgs/Float64,
-1 open .. +1 closed) in, `gripper/joint_states` (JointState, one joint "gripper", opening width
in m) out. Services: `estop` (std_srvs/SetBool: true latches, false releases) and `hold`
(std_srvs/Trigger). A teleop node's `teleop/joy` (robot_rl/ros/teleop_topics.py) with its e-stop
button pressed latches the e-stop too, straight from the person's device, whether or not an actor
is running; a topic can only latch it: releasing is the service's alone.

Rule (docs/architecture.md): no command outside the safety limits reaches a driver. So every pose or twist
command goes through SafetyFilter.filter() against a fresh state read; only ok/clipped
commands are sent, a hold verdict calls arm.hold(). A watchdog holds the arm when the commands
stop (a crashed policy must not leave a twist running), and a latched e-stop refuses everything.
A gripper command is clipped to [-1, 1] as the filter clips a pose command's gripper, sent at
once, and carried by the following pose / twist commands; it does not feed the watchdog, so a
gripper stream alone cannot keep a twist alive.

An optional guard (sim/twin_guard.py's TwinGuard: the MuJoCo twin mirroring this arm's joints)
judges every command the filter passed, gripper commands included, before the driver sees it:
a command it refuses (table, self-collision, joint limits, workspace) holds the arm instead.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from drivers.arm import Arm, ArmError, ArmReading
from drivers.safety import PoseCommand, SafetyFilter, TwistCommand
from robot_rl.ros import codec, messages, teleop_topics, topics
from robot_rl.ros.transport import Transport

log = logging.getLogger(__name__)
GUARD_LOG_PERIOD_S = 1.0  # a refusing guard logs its reason at most this often (commands come at 100 Hz)


class GuardVerdictLike(Protocol):
    ok: bool
    reason: str


class CommandGuard(Protocol):
    """Judges commands against a twin of the arm (sim/twin_guard.TwinGuard is one)."""

    def mirror(self, joint_positions: np.ndarray) -> None:
        """Take the arm's measured joints (rad); ValueError when they are malformed."""

    def check(self, command: PoseCommand | TwistCommand, reading: ArmReading | None) -> GuardVerdictLike:
        """ok: the command may go to the arm; reason: why not."""


@dataclass(frozen=True)
class ArmNodeParams:
    """The node's declared parameters. Stamps of commands are judged on the node's clock, which
    must be the clock the driver stamps its state with (the safety filter compares them)."""

    state_rate_hz: float = 200.0  # joint_states / current_pose; >= 100 Hz for a servo loop
    watchdog_timeout_s: float = 0.2  # hold when no command passed for this long
    base_frame: str = "base"  # frame of poses and twists; commands in another frame are refused
    joint_names: tuple[str, ...] = ()  # () -> joint1..jointN, as many as the driver reports
    initial_gripper: float = -1.0  # gripper value sent with commands until a gripper command (-1 open)
    gripper_max_width_m: float = 0.08  # opening at -1 (fully open); the Panda hand's 8 cm
    joint_states_topic: str = topics.JOINT_STATES.name
    current_pose_topic: str = topics.CURRENT_POSE.name
    target_pose_topic: str = topics.TARGET_POSE.name
    target_twist_topic: str = topics.TARGET_TWIST.name
    gripper_command_topic: str = topics.GRIPPER_COMMAND.name
    gripper_state_topic: str = topics.GRIPPER_STATE.name
    estop_service: str = topics.ESTOP.name
    teleop_joy_topic: str = topics.TELEOP_JOY.name  # its e-stop button latches the e-stop; "": none
    hold_service: str = topics.HOLD.name

    def __post_init__(self) -> None:
        if not (isinstance(self.state_rate_hz, (int, float)) and 100.0 <= self.state_rate_hz <= 2000.0):
            raise ValueError(
                f"ArmNodeParams.state_rate_hz must be in [100, 2000], got {self.state_rate_hz!r}"
            )
        if not (isinstance(self.watchdog_timeout_s, (int, float)) and 0 < self.watchdog_timeout_s <= 5.0):
            raise ValueError(
                f"ArmNodeParams.watchdog_timeout_s must be in (0, 5] s, got {self.watchdog_timeout_s!r}"
            )
        if not -1.0 <= self.initial_gripper <= 1.0:
            raise ValueError(
                f"ArmNodeParams.initial_gripper must be in [-1, 1], got {self.initial_gripper!r}"
            )
        width = self.gripper_max_width_m
        if not (isinstance(width, (int, float)) and 0.0 < width <= 1.0):
            raise ValueError(f"ArmNodeParams.gripper_max_width_m must be in (0, 1] m, got {width!r}")


class ArmNode:
    """Publishes the arm's state and forwards filtered commands to it.

    counters: received (commands decoded), passed (reached the driver: ok + clipped), clipped,
    held (hold verdicts), refused_estop (pose, twist and gripper), wrong_frame, bad_stamp,
    watchdog_holds, driver_errors, state_errors; gripper_received, gripper_passed,
    gripper_clipped, bad_gripper (not a finite number), gripper_state_errors; guard_refused,
    guard_errors (the guard raised: the command is refused), guard_mirror_errors; teleop_estops
    (latched by a teleop device's e-stop button), bad_teleop_joy (not the teleop layout); superseded
    (pose, twist and gripper commands the keep-last queue dropped for a newer one because the
    node fell behind; refreshed on the watchdog timer, 0 on rclpy, which does not say). Garbled
    payloads never reach the node: the transport drops and counts them in
    `transport.dropped_garbled`.
    """

    def __init__(
        self,
        transport: Transport,
        arm: Arm,
        safety: SafetyFilter,
        params: ArmNodeParams | None = None,
        clock: Callable[[], float] = time.time,
        guard: CommandGuard | None = None,
    ) -> None:
        self.params = p = params or ArmNodeParams()
        self.arm, self.safety, self.clock, self.guard = arm, safety, clock, guard
        self.counters: Counter[str] = Counter()
        self.estopped = False
        self.gripper_command = p.initial_gripper
        self._last_pass: float | None = None  # node clock time of the last command that moved the arm
        self._watchdog_fired = False
        self._guard_logged_at: float | None = None  # node clock time of the last refusal logged
        self._guard_unlogged = 0  # refusals since then
        self._joint_names: Sequence[str] = p.joint_names
        t = topics
        self._joint_pub = t.JOINT_STATES.publisher(transport, p.joint_states_topic)
        self._pose_pub = t.CURRENT_POSE.publisher(transport, p.current_pose_topic)
        self._gripper_pub = t.GRIPPER_STATE.publisher(transport, p.gripper_state_topic)
        self._command_subs = [
            t.TARGET_POSE.subscribe(transport, self._on_target_pose, p.target_pose_topic),
            t.TARGET_TWIST.subscribe(transport, self._on_target_twist, p.target_twist_topic),
            t.GRIPPER_COMMAND.subscribe(transport, self._on_gripper_command, p.gripper_command_topic),
        ]
        self._handles = [
            *self._command_subs,
            transport.create_timer(1.0 / p.state_rate_hz, self._on_state_timer),
            # Checked 4x per timeout, so a stalled command stream is held within 1.25 timeouts.
            transport.create_timer(p.watchdog_timeout_s / 4, self._on_watchdog),
            transport.create_service(p.estop_service, t.ESTOP.srv_type, self._on_estop),
            transport.create_service(p.hold_service, t.HOLD.srv_type, self._on_hold),
        ]
        if p.teleop_joy_topic:
            self._handles.append(t.TELEOP_JOY.subscribe(transport, self._on_teleop_joy, p.teleop_joy_topic))

    # ---- state ------------------------------------------------------------------------------
    def _on_state_timer(self) -> None:
        try:
            reading = self.arm.state()
            if not self._joint_names:
                self._joint_names = tuple(f"joint{i + 1}" for i in range(len(reading.joint_positions)))
            joints = messages.joint_state_msg(
                self._joint_names, reading.joint_positions, reading.joint_velocities, reading.stamp
            )
            pose = messages.pose_stamped_msg(
                reading.ee_position, reading.ee_quat_wxyz, reading.stamp, self.params.base_frame
            )
        except (ArmError, ValueError) as exc:  # ValueError: a reading the messages cannot carry
            self.counters["state_errors"] += 1
            log.warning("arm state not published: %s", exc)
            return
        self._joint_pub.publish(joints)
        self._pose_pub.publish(pose)
        self._publish_gripper(reading)
        if self.guard is not None:
            try:
                self.guard.mirror(reading.joint_positions)
            except ValueError as exc:  # the next command's check mirrors again, and refuses if it must
                self.counters["guard_mirror_errors"] += 1
                log.warning("twin guard could not mirror the joints: %s", exc)

    def _publish_gripper(self, reading: ArmReading) -> None:
        """The opening width in metres (0 closed .. gripper_max_width_m open), as the sim tasks'
        gripper_width() reports it; readings are in command units (-1 open .. +1 closed)."""
        if reading.gripper is None:
            return
        g = float(reading.gripper)
        if not math.isfinite(g):
            self.counters["gripper_state_errors"] += 1
            return
        width = (1.0 - g) / 2.0 * self.params.gripper_max_width_m
        self._gripper_pub.publish(messages.joint_state_msg(("gripper",), [width], [0.0], reading.stamp))

    # ---- commands ---------------------------------------------------------------------------
    def _on_gripper_command(self, msg: Any) -> None:
        self.counters["gripper_received"] += 1
        try:
            value = messages.float64_from_msg(msg)
        except codec.CodecError:  # NaN / inf: no value to clip towards
            self.counters["bad_gripper"] += 1
            return
        self.set_gripper(value)

    def set_gripper(self, position: float) -> bool:
        """Move the gripper now (-1 open .. +1 closed) and carry the value with the following pose /
        twist commands (PoseStamped has no gripper field). Clipped to [-1, 1] as the safety filter
        clips a command's gripper; refused while the e-stop is latched or when the guard refuses.
        Whether it reached the driver. Not a watchdog feed: a gripper stream moves no joint."""
        if self.estopped:
            self.counters["refused_estop"] += 1
            return False
        value = float(position)
        if not math.isfinite(value):
            self.counters["bad_gripper"] += 1
            return False
        clipped = min(max(value, -1.0), 1.0)
        if not self._gripper_guarded(clipped):
            return False
        try:
            self.arm.gripper(clipped)
        except ArmError as exc:
            self.counters["driver_errors"] += 1
            log.error("driver refused a gripper command: %s", exc)
            return False
        self.counters["gripper_passed"] += 1
        self.counters["gripper_clipped"] += int(clipped != value)
        self.gripper_command = clipped
        return True

    def _gripper_guarded(self, value: float) -> bool:
        """The guard's verdict on moving the fingers with the arm where it is (an opening hand
        near the table can still hit it). True without a guard: the gripper then needs no state."""
        if self.guard is None:
            return True
        try:
            reading = self.arm.state()
        except ArmError as exc:
            self.counters["guard_refused"] += 1
            self._log_refusal(f"arm state unreadable: {exc}")
            return False
        here = PoseCommand(reading.ee_position, reading.ee_quat_wxyz, value, self.clock())
        return self._guard_passes(here, reading)

    def _on_target_pose(self, msg: Any) -> None:
        parsed = self._parse(msg, messages.pose_from_msg)
        if parsed is not None:
            position, quat, stamp = parsed
            self._command(PoseCommand(position, quat, self.gripper_command, stamp))

    def _on_target_twist(self, msg: Any) -> None:
        parsed = self._parse(msg, messages.twist_from_msg)
        if parsed is not None:
            linear, angular, stamp = parsed
            self._command(TwistCommand(linear, angular, self.gripper_command, stamp))

    def _parse(self, msg: Any, decode: Callable[[Any], Any]) -> Any | None:
        """Decoded fields, or None (counted) for a message the filter cannot judge: a bad stamp,
        or a frame other than the base frame the safety limits are written in."""
        self.counters["received"] += 1
        if msg.header.frame_id not in ("", self.params.base_frame):
            self.counters["wrong_frame"] += 1
            return None
        try:
            return decode(msg)
        except codec.CodecError:
            self.counters["bad_stamp"] += 1
            return None

    def _command(self, command: PoseCommand | TwistCommand) -> None:
        if self.estopped:
            self.counters["refused_estop"] += 1
            return
        reading: ArmReading | None
        try:
            reading = self.arm.state()
        except ArmError as exc:
            log.warning("arm state unreadable, command judged without it: %s", exc)
            reading = None  # the filter holds without a state
        now = self.clock()
        decision = self.safety.filter(command, None if reading is None else reading.ee, now)
        if decision.hold or decision.command is None:
            self.counters["held"] += 1
            self._hold()
            return
        if not self._guard_passes(decision.command, reading):
            self._hold()
            return
        try:
            if isinstance(decision.command, PoseCommand):
                self.arm.move_to_pose(decision.command)
            else:
                self.arm.move_twist(decision.command)
        except ArmError as exc:
            self.counters["driver_errors"] += 1
            log.error("driver refused a filtered command: %s", exc)
            self._hold()
            return
        self.counters["passed"] += 1
        self.counters["clipped"] += int(decision.clipped)
        self._last_pass, self._watchdog_fired = now, False

    def _guard_passes(self, command: PoseCommand | TwistCommand, reading: ArmReading | None) -> bool:
        """The guard's verdict (True without a guard); a guard that raises refuses."""
        if self.guard is None:
            return True
        try:
            verdict = self.guard.check(command, reading)
            ok, reason = bool(verdict.ok), str(verdict.reason)
        except Exception as exc:  # whatever fails in the guard, the command does not go
            self.counters["guard_errors"] += 1
            ok, reason = False, f"guard failed: {type(exc).__name__}: {exc}"
        if not ok:
            self.counters["guard_refused"] += 1
            self._log_refusal(reason)
        return ok

    def _log_refusal(self, reason: str) -> None:
        now = self.clock()
        self._guard_unlogged += 1
        if self._guard_logged_at is not None and now - self._guard_logged_at < GUARD_LOG_PERIOD_S:
            return
        log.warning("twin guard refused %d command(s), the last: %s", self._guard_unlogged, reason)
        self._guard_logged_at, self._guard_unlogged = now, 0

    def _hold(self) -> None:
        try:
            self.arm.hold()
        except ArmError as exc:
            self.counters["driver_errors"] += 1
            log.error("arm.hold() failed: %s", exc)

    def _on_watchdog(self) -> None:
        self.counters["superseded"] = sum(sub.superseded for sub in self._command_subs)
        if self._last_pass is None or self._watchdog_fired:
            return
        if self.clock() - self._last_pass > self.params.watchdog_timeout_s:
            self._watchdog_fired = True  # once per silence: hold() each tick would fight an operator
            self.counters["watchdog_holds"] += 1
            self._hold()

    # ---- e-stop and services ---------------------------------------------------------------
    def latch_estop(self) -> str:
        """Refuse every command from now on and stop the arm; "" when it stopped, else why not.
        Only the `estop` service (false) releases it."""
        self.estopped = True  # latched before stop(), so no command slips in if stop() fails
        try:
            self.arm.stop()
        except ArmError as exc:
            self.counters["driver_errors"] += 1
            return f"arm.stop() failed: {exc}"
        return ""

    def _on_teleop_joy(self, msg: Any) -> None:
        try:
            pressed = teleop_topics.estop_pressed(msg)
        except codec.CodecError:  # a foreign joystick on the topic: not ours to read
            self.counters["bad_teleop_joy"] += 1
            return
        if pressed and not self.estopped:
            self.counters["teleop_estops"] += 1
            failed = self.latch_estop()
            log.error("e-stop pressed on the teleop device: latched%s", f", but {failed}" if failed else "")

    def _on_estop(self, request: Any) -> Any:
        if not request.data:
            self.estopped = False
            self._hold()  # resume from where the arm is, not from the last target
            return messages.set_bool_response(True, "e-stop released")
        failed = self.latch_estop()
        if failed:
            return messages.set_bool_response(False, f"e-stop latched, but {failed}")
        return messages.set_bool_response(True, "e-stop latched: commands refused until released")

    def _on_hold(self, request: Any) -> Any:
        try:
            self.arm.hold()
        except ArmError as exc:
            return messages.trigger_response(False, f"arm.hold() failed: {exc}")
        return messages.trigger_response(True, "holding")

    def destroy(self) -> None:
        """Cancel subscriptions, timers and services; the transport is the caller's to shut down."""
        for handle in self._handles:
            handle.cancel()


def main(argv: list[str] | None = None) -> None:
    """Serve the MuJoCo twin arm over zenoh (rmw_zenoh format) until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-rate-hz", type=float, default=200.0)
    parser.add_argument("--watchdog-timeout-s", type=float, default=0.2)
    args = parser.parse_args(argv)
    from drivers.safety import SafetyLimits
    from robot_rl.ros.zenoh_backend import ZenohConfig, ZenohTransport
    from sim.sim_arm import SimArm, SimArmConfig

    arm = SimArm(SimArmConfig(realtime=True), clock=time.time)
    # The twin's reachable box in front of the table, with servo-step limits for a 10..100 Hz policy.
    limits = SafetyLimits((0.2, -0.3, 0.05), (0.7, 0.3, 0.6), 0.03, 0.2, 0.25, 1.0, 30.0, 0.2)
    transport = ZenohTransport(ZenohConfig(node_name="arm_node"))
    ArmNode(transport, arm, SafetyFilter(limits), ArmNodeParams(args.state_rate_hz, args.watchdog_timeout_s))
    try:
        transport.spin()
    except KeyboardInterrupt:
        pass
    finally:
        transport.shutdown()
        arm.close()


if __name__ == "__main__":
    main()
