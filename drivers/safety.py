"""Safety filter that sits between every arm command and the arm driver.

Rule (docs/architecture.md): a command outside the configured workspace, velocity or force limits
never reaches an arm driver. SafetyFilter.filter() turns each command into a Decision: ok (pass as
is), clipped (a safe command plus the reasons it was changed) or hold (do not move). Whatever it
emits as ok/clipped is re-verified against the limits before it leaves, so a bug in the clipping
maths holds the arm instead of moving it.

Units and frames: positions in metres and quaternions (w, x, y, z) in the robot base frame; linear
velocity in m/s and angular velocity in rad/s in the base frame; forces in N; stamps and `now` in
seconds on one clock. Gripper commands are absolute, -1 fully open .. +1 closed.
Pure numpy: no ROS, no torch, so the same code guards the real arm node and the tests.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, fields
from enum import Enum

import numpy as np

_TOL = 1e-9  # m / rad / (m/s): float rounding slack when verifying an emitted command
_QUAT_SILENT = 1e-6  # |‖q‖ - 1| below this is float32 rounding noise: normalised without a reason
_QUAT_REPAIR = 1e-2  # below this a quaternion is normalised (with a reason); above it the sender is broken


class Verdict(str, Enum):
    """ok: pass as is; clipped: a changed, safe command; hold: do not move."""

    OK = "ok"
    CLIPPED = "clipped"
    HOLD = "hold"


class Reason(str, Enum):
    MALFORMED = "malformed"  # wrong type or shape
    NON_FINITE = "non_finite"  # NaN / inf in the command or in `now`
    BAD_QUAT = "bad_quat"  # command quaternion zero or far from unit
    QUAT_NORMALISED = "quat_normalised"
    STALE_COMMAND = "stale_command"
    FUTURE_COMMAND = "future_command"
    NO_STATE = "no_state"  # state missing or malformed
    BAD_STATE = "bad_state"  # state non-finite or its quaternion is not a rotation
    STALE_STATE = "stale_state"
    FUTURE_STATE = "future_state"
    NO_FORCE = "no_force"  # force required but not measured
    FORCE_LIMIT = "force_limit"
    STATE_OUTSIDE_WORKSPACE = "state_outside_workspace"  # ee farther than max_step_m from the box
    WORKSPACE = "workspace"
    STEP = "step"
    ROT_STEP = "rot_step"
    LINEAR_SPEED = "linear_speed"
    ANGULAR_SPEED = "angular_speed"
    GRIPPER = "gripper"
    INTERNAL = "internal"  # the clipped command failed re-verification (a bug): held instead


# Force reasons hold the arm but leave the measured pose fresh and usable as a hold target.
_FORCE_REASONS = {Reason.NO_FORCE, Reason.FORCE_LIMIT}


def workspace_corner(raw: object, what: str) -> np.ndarray:
    """A workspace box corner as 3 finite float64s (m, base frame); ValueError naming `what`."""
    try:
        corner = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        corner = np.full(0, np.nan)
    if corner.shape != (3,) or not np.all(np.isfinite(corner)):
        raise ValueError(f"{what} must be 3 finite numbers (m, base frame), got {raw!r}")
    return corner


@dataclass(frozen=True)
class SafetyLimits:
    """Limits every command to the arm must satisfy (units in the field names / comments).

    Also the bringup's `safety` config (robot_rl/ros/bringup.py loads it as an OmegaConf structured
    config, whose defaults carry the task's workspace box); no field has a default but the clock
    skew, so a limit is always chosen, never inherited by accident."""

    workspace_low: tuple[float, float, float]  # m, base frame, ee position lower corner
    workspace_high: tuple[float, float, float]  # m, base frame, upper corner
    max_step_m: float  # largest ee translation per command tick (m)
    max_rot_step_rad: float  # largest ee rotation per command tick (rad)
    max_linear_speed: float  # m/s, twist commands
    max_angular_speed: float  # rad/s, twist commands
    max_force_n: float  # measured force magnitude (N) above which the arm is held
    max_command_age_s: float  # a command or state older than this (s) is stale
    max_clock_skew_s: float = 0.05  # a stamp this far (s) in the future is tolerated as clock jitter

    def __post_init__(self) -> None:
        for name in ("workspace_low", "workspace_high"):
            box = workspace_corner(getattr(self, name), f"SafetyLimits.{name}")
            object.__setattr__(self, name, tuple(float(x) for x in box))
        for axis, lo, hi in zip("xyz", self.workspace_low, self.workspace_high, strict=True):
            if not lo < hi:
                raise ValueError(
                    f"SafetyLimits.workspace_low[{axis}]={lo} must be below workspace_high[{axis}]={hi}"
                )
        for f in fields(self)[2:]:
            value = getattr(self, f.name)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not ok or not math.isfinite(value) or value <= 0:
                raise ValueError(f"SafetyLimits.{f.name} must be a finite number > 0, got {value!r}")
            object.__setattr__(self, f.name, float(value))


@dataclass(frozen=True, eq=False)
class PoseCommand:
    """Absolute ee target: position (3,) m and quat_wxyz (4,) in the base frame; stamp in s."""

    position: np.ndarray
    quat_wxyz: np.ndarray
    gripper: float
    stamp: float


@dataclass(frozen=True, eq=False)
class TwistCommand:
    """ee velocity in the base frame: linear (3,) m/s, angular (3,) rad/s; stamp in s."""

    linear: np.ndarray
    angular: np.ndarray
    gripper: float
    stamp: float


@dataclass(frozen=True, eq=False)
class ArmState:
    """Measured ee pose (base frame, m, wxyz) and wrench force (3,) N or None when not measured."""

    ee_position: np.ndarray
    ee_quat_wxyz: np.ndarray
    wrench_force: np.ndarray | None
    stamp: float


@dataclass(frozen=True, eq=False)
class Decision:
    """What to send. For hold, `command` is a pose at the measured ee pose (no motion), or None when
    no fresh valid state or earlier gripper command exists to build one: then the node must stop
    the driver itself (its stop / hold service) rather than send anything."""

    verdict: Verdict
    command: PoseCommand | TwistCommand | None
    reasons: tuple[Reason, ...] = ()

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.OK

    @property
    def clipped(self) -> bool:
        return self.verdict is Verdict.CLIPPED

    @property
    def hold(self) -> bool:
        return self.verdict is Verdict.HOLD


def _norm(v: np.ndarray) -> float:
    return math.hypot(*(float(x) for x in v))  # hypot, unlike sqrt(dot), does not overflow early


def _vec(x: object, n: int) -> np.ndarray | None:
    try:
        v = np.array(x, dtype=np.float64)  # a copy: the caller's array may change after filtering
    except (TypeError, ValueError):
        return None
    return v if v.shape == (n,) else None


def _scalar(x: object) -> float | None:
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)):
        return None
    return float(x)


def _parse(msg: object) -> PoseCommand | TwistCommand | ArmState | None:
    """A float64 copy of a command or state, or None when a field has the wrong type or shape."""
    shapes = _SHAPES.get(type(msg))
    if shapes is None:
        return None
    parts: list[object] = []
    for f, n in zip(fields(msg), shapes, strict=True):  # type: ignore[arg-type]
        raw = getattr(msg, f.name)
        if f.name == "wrench_force" and raw is None:  # None: the arm measures no force
            parts.append(None)
            continue
        value = _scalar(raw) if n == 0 else _vec(raw, n)
        if value is None:
            return None
        parts.append(value)
    return type(msg)(*parts)  # type: ignore[arg-type]


def _finite(msg: PoseCommand | TwistCommand | ArmState) -> bool:
    values = [getattr(msg, f.name) for f in fields(msg)]
    return all(v is None or bool(np.all(np.isfinite(v))) for v in values)


def _unit(q: np.ndarray) -> tuple[np.ndarray | None, bool]:
    """(unit quaternion or None when too far from unit to trust, whether it was visibly repaired)."""
    n = _norm(q)
    if not abs(n - 1.0) <= _QUAT_REPAIR:
        return None, False
    return q / n, abs(n - 1.0) > _QUAT_SILENT


def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of wxyz quaternions."""
    w = a[0] * b[0] - float(np.dot(a[1:], b[1:]))
    return np.concatenate(([w], a[0] * b[1:] + b[0] * a[1:] + np.cross(a[1:], b[1:])))


def _relative(current: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, float]:
    """Rotation from current to target (unit wxyz) on the short way round, and its angle (rad)."""
    r = _quat_mul(current * np.array([1.0, -1.0, -1.0, -1.0]), target)
    if r[0] < 0:  # q and -q are the same rotation; take the one with angle <= pi
        r = -r
    return r, 2.0 * math.atan2(_norm(r[1:]), r[0])  # atan2 stays accurate for tiny angles, acos does not


def rotation_angle(current: np.ndarray, target: np.ndarray) -> float:
    """Angle (rad, in [0, pi]) of the rotation between two unit wxyz quaternions."""
    return _relative(current, target)[1]


def _cap_norm(v: np.ndarray, limit: float) -> tuple[np.ndarray, bool]:
    """v scaled down (direction kept) so that its norm is at most limit; whether it was scaled."""
    peak = float(np.max(np.abs(v)))
    if peak == 0.0:
        return v, False
    unit = v / peak  # pre-scaled so a huge finite vector's norm cannot overflow to inf
    if peak * _norm(unit) <= limit:
        return v, False
    return unit * (limit / _norm(unit)), True


# Field sizes per message type, in field order; 0 is a scalar.
_SHAPES = {PoseCommand: (3, 4, 0, 0), TwistCommand: (3, 3, 0, 0), ArmState: (3, 4, 3, 0)}


class SafetyFilter:
    """Filters arm commands against SafetyLimits; counts every verdict and reason for metrics.

    require_force: hold when the state carries no force measurement (arms with an F/T sensor).
    """

    def __init__(self, limits: SafetyLimits, require_force: bool = False) -> None:
        self.limits = limits
        self.require_force = require_force
        self.low = np.array(limits.workspace_low)
        self.high = np.array(limits.workspace_high)
        self.verdict_counts: Counter[str] = Counter()
        self.reason_counts: Counter[str] = Counter()
        # The hold pose repeats the last gripper command passed, so holding never opens or closes it.
        self._last_gripper: float | None = None

    def filter(self, command: PoseCommand | TwistCommand, state: ArmState | None, now: float) -> Decision:
        """Decide what may reach the driver at time `now` (s) given the measured arm state."""
        now_s = _scalar(now)
        now_s = now_s if now_s is not None and math.isfinite(now_s) else None
        cmd = _parse(command)
        st, state_reasons = self._check_state(state, now_s)
        hold = self._command_reasons(cmd, now_s) + state_reasons
        if not hold and st is not None:
            out, reasons = (
                self._limit_pose(cmd, st) if isinstance(cmd, PoseCommand) else self._limit_twist(cmd, st)
            )  # type: ignore[arg-type]
            if out is not None and not self.within_limits(out, st):
                out, reasons = None, [Reason.INTERNAL]
            if out is not None:
                self._last_gripper = out.gripper
                return self._decide(Verdict.CLIPPED if reasons else Verdict.OK, out, reasons)
            hold = reasons
        fresh = st is not None and now_s is not None and not set(state_reasons) - _FORCE_REASONS
        return self._decide(Verdict.HOLD, self._hold_command(st if fresh else None, now_s), hold)

    def _hold_command(self, st: ArmState | None, now: float | None) -> PoseCommand | None:
        """A pose at the measured ee pose: no motion. None when that pose is not fresh, lies outside
        the box (no command outside the box may reach the driver) or no gripper command was passed
        yet (a hold must neither open nor close the gripper)."""
        if st is None or now is None or self._last_gripper is None:
            return None
        if not np.all((self.low <= st.ee_position) & (st.ee_position <= self.high)):
            return None
        return PoseCommand(st.ee_position.copy(), st.ee_quat_wxyz, self._last_gripper, now)

    def _command_reasons(self, cmd: object, now: float | None) -> list[Reason]:
        if not isinstance(cmd, (PoseCommand, TwistCommand)):
            return [Reason.MALFORMED]
        if not _finite(cmd) or now is None:
            return [Reason.NON_FINITE]
        if now - cmd.stamp > self.limits.max_command_age_s:
            return [Reason.STALE_COMMAND]
        if cmd.stamp - now > self.limits.max_clock_skew_s:
            return [Reason.FUTURE_COMMAND]
        return []

    def _check_state(self, state: object, now: float | None) -> tuple[ArmState | None, list[Reason]]:
        """(the state with a unit quaternion, or None when unusable; reasons to hold)."""
        st = None if state is None else _parse(state)
        if not isinstance(st, ArmState):
            return None, [Reason.NO_STATE]
        quat = _unit(st.ee_quat_wxyz)[0] if _finite(st) else None
        if quat is None:
            return None, [Reason.BAD_STATE]
        st = ArmState(st.ee_position, quat, st.wrench_force, st.stamp)
        if now is not None and now - st.stamp > self.limits.max_command_age_s:
            return st, [Reason.STALE_STATE]
        if now is not None and st.stamp - now > self.limits.max_clock_skew_s:
            return st, [Reason.FUTURE_STATE]
        if st.wrench_force is None:
            return st, [Reason.NO_FORCE] if self.require_force else []
        return st, [Reason.FORCE_LIMIT] if _norm(st.wrench_force) > self.limits.max_force_n else []

    def _limit_pose(self, cmd: PoseCommand, st: ArmState) -> tuple[PoseCommand | None, list[Reason]]:
        reasons: list[Reason] = []
        quat, repaired = _unit(cmd.quat_wxyz)
        if quat is None:
            return None, [Reason.BAD_QUAT]
        if repaired:
            reasons.append(Reason.QUAT_NORMALISED)
        target = np.clip(cmd.position, self.low, self.high)
        if not np.array_equal(target, cmd.position):
            reasons.append(Reason.WORKSPACE)
        # When the ee is outside the box (tracking error, a push), the step budget left after the
        # distance to the box guarantees the projected result is both in the box and within max_step.
        cur = st.ee_position
        budget = self.limits.max_step_m - _norm(cur - np.clip(cur, self.low, self.high))
        if not budget > 0:
            return None, [Reason.STATE_OUTSIDE_WORKSPACE]
        dist = _norm(target - cur)
        if dist > budget:
            target = np.clip(cur + (target - cur) * (budget / dist), self.low, self.high)
            reasons.append(Reason.STEP)
        rel, angle = _relative(st.ee_quat_wxyz, quat)
        if angle > self.limits.max_rot_step_rad:
            # Slerp toward the target by exactly the allowed angle about the same axis.
            half = 0.5 * self.limits.max_rot_step_rad
            step = np.concatenate(([math.cos(half)], rel[1:] / _norm(rel[1:]) * math.sin(half)))
            quat = _quat_mul(st.ee_quat_wxyz, step)
            quat = quat / _norm(quat)
            reasons.append(Reason.ROT_STEP)
        gripper = self._clip_gripper(cmd.gripper, reasons)
        return PoseCommand(target, quat, gripper, cmd.stamp), reasons

    def _limit_twist(self, cmd: TwistCommand, st: ArmState) -> tuple[TwistCommand, list[Reason]]:
        reasons: list[Reason] = []
        linear = np.clip(cmd.linear, *self._twist_bounds(st.ee_position))
        if not np.array_equal(linear, cmd.linear):
            reasons.append(Reason.WORKSPACE)
        # The per-axis bounds contain 0, so scaling down for speed keeps them satisfied.
        linear, capped = _cap_norm(linear, self.limits.max_linear_speed)
        if capped:
            reasons.append(Reason.LINEAR_SPEED)
        angular, capped = _cap_norm(cmd.angular, self.limits.max_angular_speed)
        if capped:
            reasons.append(Reason.ANGULAR_SPEED)
        gripper = self._clip_gripper(cmd.gripper, reasons)
        return TwistCommand(linear, angular, gripper, cmd.stamp), reasons

    def _twist_bounds(self, ee_position: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-axis linear velocity bounds (m/s) that keep the ee in the box.

        A twist keeps moving the arm until the driver's watchdog stops it, at most max_command_age_s
        after its stamp, so the ee must stay in the box over that horizon. On an axis where the ee
        is already outside, only motion back toward the box is allowed.
        """
        horizon = self.limits.max_command_age_s
        with np.errstate(over="ignore"):  # a far-away ee gives +-inf bounds, which is correct
            lo = np.minimum(0.0, (self.low - ee_position) / horizon)
            hi = np.maximum(0.0, (self.high - ee_position) / horizon)
        return lo, hi

    def _clip_gripper(self, gripper: float, reasons: list[Reason]) -> float:
        clipped = min(max(gripper, -1.0), 1.0)
        if clipped != gripper:
            reasons.append(Reason.GRIPPER)
        return clipped

    def within_limits(self, cmd: PoseCommand | TwistCommand, st: ArmState) -> bool:
        """Whether cmd is finite, gripper in [-1, 1] and, relative to the (unit-quaternion) state:
        a pose is in the box and within one step / rotation step; a twist is within the speeds
        and the workspace velocity bounds."""
        if not _finite(cmd) or not -1.0 <= cmd.gripper <= 1.0:
            return False
        lim = self.limits
        if isinstance(cmd, PoseCommand):
            return (
                bool(np.all((self.low <= cmd.position) & (cmd.position <= self.high)))
                and _norm(cmd.position - st.ee_position) <= lim.max_step_m + _TOL
                and abs(_norm(cmd.quat_wxyz) - 1.0) <= _TOL
                and rotation_angle(st.ee_quat_wxyz, cmd.quat_wxyz) <= lim.max_rot_step_rad + _TOL
            )
        lo, hi = self._twist_bounds(st.ee_position)
        return (
            bool(np.all((lo - _TOL <= cmd.linear) & (cmd.linear <= hi + _TOL)))
            and _norm(cmd.linear) <= lim.max_linear_speed + _TOL
            and _norm(cmd.angular) <= lim.max_angular_speed + _TOL
        )

    def _decide(
        self, verdict: Verdict, cmd: PoseCommand | TwistCommand | None, reasons: list[Reason]
    ) -> Decision:
        self.verdict_counts[verdict.value] += 1
        for r in reasons:
            self.reason_counts[r.value] += 1
        return Decision(verdict, cmd, tuple(reasons))
