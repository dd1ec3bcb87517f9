"""Tests of the arm-command safety filter: one hand case per rule, config validation, and a seeded
fuzz that checks every emitted command against the limits with checks written independently of
the filter's own verification."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drivers.safety import (
    ArmState,
    Decision,
    PoseCommand,
    Reason,
    SafetyFilter,
    SafetyLimits,
    TwistCommand,
    Verdict,
)

LOW, HIGH = np.array([0.25, -0.3, 0.015]), np.array([0.75, 0.3, 0.4])
NOW = 100.0
ID = np.array([1.0, 0.0, 0.0, 0.0])


def limits(**kw: object) -> SafetyLimits:
    base: dict[str, object] = dict(
        workspace_low=tuple(LOW),
        workspace_high=tuple(HIGH),
        max_step_m=0.03,
        max_rot_step_rad=0.2,
        max_linear_speed=0.25,
        max_angular_speed=1.0,
        max_force_n=30.0,
        max_command_age_s=0.2,
    )
    base.update(kw)
    return SafetyLimits(**base)  # type: ignore[arg-type]


def state(pos=(0.5, 0.0, 0.2), quat=ID, force=(0.0, 0.0, 5.0), stamp=NOW) -> ArmState:
    return ArmState(np.array(pos, float), np.array(quat, float), force, stamp)


def pose(pos=(0.5, 0.0, 0.2), quat=ID, gripper=0.0, stamp=NOW) -> PoseCommand:
    return PoseCommand(np.array(pos, float), np.array(quat, float), gripper, stamp)


def twist(lin=(0.0, 0.0, 0.0), ang=(0.0, 0.0, 0.0), gripper=0.0, stamp=NOW) -> TwistCommand:
    return TwistCommand(np.array(lin, float), np.array(ang, float), gripper, stamp)


def quat_about(axis, angle: float) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    return np.concatenate(([math.cos(angle / 2)], axis * math.sin(angle / 2)))


def angle_between(q1: np.ndarray, q2: np.ndarray) -> float:
    """Independent of the filter's maths: 2 acos |<q1, q2>| for unit quaternions."""
    return 2.0 * math.acos(min(1.0, abs(float(np.dot(q1, q2)))))


def run(cmd, st=None, now=NOW, f: SafetyFilter | None = None) -> Decision:
    return (f or SafetyFilter(limits())).filter(cmd, state() if st is None else st, now)


# ---------------------------------------------------------------- config validation


@pytest.mark.parametrize(
    "kw, field",
    [
        (dict(workspace_low=(0.8, -0.3, 0.015)), "workspace_low"),
        (dict(workspace_high=(0.75, -0.3, 0.4)), "workspace_low"),  # high == low on y
        (dict(workspace_low=(0.25, -0.3)), "workspace_low"),
        (dict(workspace_high=(0.75, np.nan, 0.4)), "workspace_high"),
        (dict(workspace_high="abc"), "workspace_high"),
        (dict(max_step_m=0.0), "max_step_m"),
        (dict(max_rot_step_rad=-0.1), "max_rot_step_rad"),
        (dict(max_linear_speed=math.inf), "max_linear_speed"),
        (dict(max_angular_speed=math.nan), "max_angular_speed"),
        (dict(max_force_n="30"), "max_force_n"),
        (dict(max_command_age_s=True), "max_command_age_s"),
        (dict(max_clock_skew_s=0), "max_clock_skew_s"),
    ],
)
def test_limits_reject_bad_config_naming_the_field(kw: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        limits(**kw)


def test_limits_store_floats() -> None:
    lim = limits(max_step_m=1)
    assert lim.max_step_m == 1.0 and isinstance(lim.max_step_m, float)
    assert lim.workspace_low == tuple(LOW)


# ---------------------------------------------------------------- hand cases, one per rule


def test_ok_pose_passes_unchanged() -> None:
    d = run(pose((0.51, 0.01, 0.2), quat_about([0, 0, 1], 0.1), gripper=0.5))
    assert d.verdict is Verdict.OK and d.ok and d.reasons == ()
    np.testing.assert_allclose(d.command.position, [0.51, 0.01, 0.2])
    np.testing.assert_allclose(d.command.quat_wxyz, quat_about([0, 0, 1], 0.1))
    assert d.command.gripper == 0.5 and d.command.stamp == NOW


@pytest.mark.parametrize(
    "cmd",
    [
        pose((np.nan, 0, 0.2)),
        pose(quat=(1, 0, np.inf, 0)),
        pose(gripper=np.nan),
        pose(stamp=np.inf),
        twist(lin=(0, np.inf, 0)),
        twist(ang=(np.nan, 0, 0)),
    ],
)
def test_non_finite_command_holds(cmd) -> None:
    d = run(cmd)
    assert d.hold and d.reasons == (Reason.NON_FINITE,)


def test_non_finite_now_holds() -> None:
    assert run(pose(), now=math.nan).reasons == (Reason.NON_FINITE,)


@pytest.mark.parametrize("cmd", [pose(pos=(1, 2)), "go", None, pose(gripper="open")])
def test_malformed_command_holds(cmd) -> None:
    assert run(cmd).reasons == (Reason.MALFORMED,)


def test_near_unit_quaternion_is_normalised_and_far_one_held() -> None:
    d = run(pose(quat=(1.005, 0, 0, 0)))
    assert d.clipped and d.reasons == (Reason.QUAT_NORMALISED,)
    np.testing.assert_allclose(d.command.quat_wxyz, ID)
    silent = run(pose(quat=(1 + 1e-8, 0, 0, 0)))  # float rounding: no reason
    assert silent.ok and np.linalg.norm(silent.command.quat_wxyz) == pytest.approx(1, abs=1e-12)
    for q in [(0, 0, 0, 0), (2, 0, 0, 0), (0.5, 0, 0, 0)]:
        assert run(pose(quat=q)).reasons == (Reason.BAD_QUAT,)


def test_stale_and_future_commands_hold() -> None:
    assert run(pose(stamp=NOW - 0.21)).reasons == (Reason.STALE_COMMAND,)
    assert run(pose(stamp=NOW - 0.19)).ok
    assert run(pose(stamp=NOW + 0.04)).ok  # clock jitter within max_clock_skew_s
    assert run(pose(stamp=NOW + 0.06)).reasons == (Reason.FUTURE_COMMAND,)


def test_missing_stale_future_or_bad_state_holds() -> None:
    f = SafetyFilter(limits())
    assert f.filter(pose(), None, NOW).reasons == (Reason.NO_STATE,)
    assert run(pose(), st=state(stamp=NOW - 0.3)).reasons == (Reason.STALE_STATE,)
    assert run(pose(), st=state(stamp=NOW + 0.3)).reasons == (Reason.FUTURE_STATE,)
    assert run(pose(), st=state(pos=(np.nan, 0, 0.2))).reasons == (Reason.BAD_STATE,)
    assert run(pose(), st=state(quat=(0, 0, 0, 0))).reasons == (Reason.BAD_STATE,)
    assert run(pose(), st=state(force=(0, 0, np.inf))).reasons == (Reason.BAD_STATE,)
    assert run(pose(), st=state(pos=(0.5, 0))).reasons == (Reason.NO_STATE,)


def test_force_above_limit_holds_and_missing_force_only_when_required() -> None:
    assert run(pose(), st=state(force=(20.0, 20.0, 15.0))).reasons == (Reason.FORCE_LIMIT,)
    assert run(pose(), st=state(force=(20.0, 20.0, 0.0))).ok  # 28.3 N < 30 N
    assert run(pose(), st=state(force=None)).ok
    strict = SafetyFilter(limits(), require_force=True)
    assert strict.filter(pose(), state(force=None), NOW).reasons == (Reason.NO_FORCE,)


def test_pose_target_clipped_to_workspace() -> None:
    d = run(pose((0.5, 0.0, 0.0)), st=state(pos=(0.5, 0.0, 0.03)))
    assert d.clipped and Reason.WORKSPACE in d.reasons and Reason.STEP not in d.reasons
    np.testing.assert_allclose(d.command.position, [0.5, 0.0, 0.015])


def test_pose_step_scaled_along_the_direction() -> None:
    d = run(pose((0.6, 0.0, 0.3)))
    assert d.reasons == (Reason.STEP,)
    step = d.command.position - np.array([0.5, 0.0, 0.2])
    assert np.linalg.norm(step) == pytest.approx(0.03)
    np.testing.assert_allclose(step / np.linalg.norm(step), np.array([1, 0, 1]) / math.sqrt(2))


def test_rotation_step_slerps_by_the_allowed_angle() -> None:
    cur = quat_about([0, 1, 0], 0.3)
    d = run(pose(quat=quat_about([0, 1, 0], 1.3)), st=state(quat=cur))
    assert d.reasons == (Reason.ROT_STEP,)
    np.testing.assert_allclose(d.command.quat_wxyz, quat_about([0, 1, 0], 0.5), atol=1e-12)
    # The sign of the target quaternion does not matter: the short way round is taken.
    d = run(pose(quat=-quat_about([0, 0, 1], 0.1)))
    assert d.ok


def test_state_outside_box_steps_back_in_or_holds_when_too_far() -> None:
    d = run(pose((0.5, 0.0, 0.2)), st=state(pos=(0.5, 0.0, 0.005)))  # 1 cm below the floor
    assert d.clipped and Reason.STEP in d.reasons
    assert d.command.position[2] >= 0.015
    assert np.linalg.norm(d.command.position - [0.5, 0.0, 0.005]) <= 0.03 + 1e-9
    d = run(pose((0.5, 0.0, 0.2)), st=state(pos=(0.5, 0.0, -0.1)))
    assert d.hold and d.reasons == (Reason.STATE_OUTSIDE_WORKSPACE,) and d.command is None


def test_twist_speeds_scaled_keeping_direction() -> None:
    d = run(twist(lin=(0.3, 0.4, 0.0), ang=(0.0, 3.0, 4.0)))
    assert set(d.reasons) == {Reason.LINEAR_SPEED, Reason.ANGULAR_SPEED}
    np.testing.assert_allclose(d.command.linear, [0.15, 0.2, 0.0])
    np.testing.assert_allclose(d.command.angular, [0.0, 0.6, 0.8])
    # Huge finite values: the norm must not overflow into a zero or NaN command.
    huge = run(twist(ang=(1e308, 1e308, 1e308)))
    np.testing.assert_allclose(huge.command.angular, np.full(3, 1.0 / math.sqrt(3)))


def test_twist_may_not_drive_out_of_the_box() -> None:
    # 1 cm above the floor, 0.2 s horizon: at most 0.05 m/s down; sliding along x is untouched.
    d = run(twist(lin=(0.1, 0.0, -0.2)), st=state(pos=(0.5, 0.0, 0.025)))
    assert d.reasons == (Reason.WORKSPACE,)
    np.testing.assert_allclose(d.command.linear, [0.1, 0.0, -0.05])
    # Outside the box only motion back toward it is allowed.
    d = run(twist(lin=(0.0, 0.0, -0.1)), st=state(pos=(0.5, 0.0, 0.0)))
    np.testing.assert_allclose(d.command.linear, 0.0)
    assert run(twist(lin=(0.0, 0.0, 0.1)), st=state(pos=(0.5, 0.0, 0.0))).ok


def test_gripper_clipped() -> None:
    assert run(pose(gripper=3.0)).command.gripper == 1.0
    d = run(twist(gripper=-7.0))
    assert d.reasons == (Reason.GRIPPER,) and d.command.gripper == -1.0


def test_hold_command_is_the_measured_pose_with_the_last_gripper() -> None:
    f = SafetyFilter(limits())
    assert f.filter(pose(stamp=0.0), state(), NOW).command is None  # no gripper command passed yet
    f.filter(pose(gripper=0.7), state(), NOW)
    st = state(pos=(0.6, 0.1, 0.3), quat=quat_about([1, 0, 0], 0.4), force=(50, 0, 0))
    d = f.filter(pose(), st, NOW + 0.1)
    assert d.hold and d.reasons == (Reason.FORCE_LIMIT,)
    np.testing.assert_array_equal(d.command.position, st.ee_position)
    np.testing.assert_allclose(d.command.quat_wxyz, st.ee_quat_wxyz)
    assert d.command.gripper == 0.7 and d.command.stamp == NOW + 0.1
    assert f.filter(pose(), state(stamp=NOW - 1), NOW).command is None  # a stale pose is no hold target


def test_counters() -> None:
    f = SafetyFilter(limits())
    f.filter(pose(), state(), NOW)
    f.filter(pose((0.9, 0, 0.2), gripper=2), state(), NOW)
    f.filter(pose(stamp=0.0), state(), NOW)
    assert f.verdict_counts == {"ok": 1, "clipped": 1, "hold": 1}
    assert f.reason_counts == {"workspace": 1, "step": 1, "gripper": 1, "stale_command": 1}


def test_caller_arrays_are_copied() -> None:
    cmd = pose((0.51, 0.0, 0.2))
    d = run(cmd)
    cmd.position[0] = 10.0
    assert d.command.position[0] == 0.51


# ---------------------------------------------------------------- fuzz


def _rand_vec(rng: np.random.Generator, n: int, centre: np.ndarray, spread: float) -> np.ndarray:
    v = centre + rng.normal(0.0, spread, n)
    r = rng.random()
    if r < 0.03:
        v[rng.integers(n)] = rng.choice([np.nan, np.inf, -np.inf])
    elif r < 0.06:
        with np.errstate(over="ignore"):  # overflow to inf is one more case to test
            v = v * 10.0 ** rng.uniform(3, 308)
    return v


def _rand_quat(rng: np.random.Generator, near: np.ndarray) -> np.ndarray:
    r = rng.random()
    q = near + rng.normal(0.0, 0.03, 4) if r < 0.6 else rng.normal(size=4)
    q = q / np.linalg.norm(q)
    if r > 0.9:
        q = q * rng.choice([0.0, 1.003, 0.5, 1.5, np.nan, 1e300])
    return q


def _rand_case(rng: np.random.Generator):
    pos = rng.uniform(LOW - 0.05, HIGH + 0.05)
    quat = rng.normal(size=4)
    quat = quat / np.linalg.norm(quat)
    force = None if rng.random() < 0.2 else _rand_vec(rng, 3, np.zeros(3), 8.0)
    st = ArmState(
        _rand_vec(rng, 3, pos, 0.0), _rand_quat(rng, quat), force, NOW - rng.exponential(0.1) + 0.05
    )
    if rng.random() < 0.03:
        st = None
    stamp = NOW - rng.exponential(0.1) + (0.07 if rng.random() < 0.1 else 0.0)
    gripper = float(rng.uniform(-1.3, 1.3)) if rng.random() > 0.02 else np.nan
    if rng.random() < 0.5:
        cmd = PoseCommand(
            _rand_vec(rng, 3, pos, rng.choice([0.005, 0.01, 0.1, 1.0])), _rand_quat(rng, quat), gripper, stamp
        )
    else:
        lin, ang = _rand_vec(rng, 3, np.zeros(3), 0.1), _rand_vec(rng, 3, np.zeros(3), 0.4)
        cmd = TwistCommand(lin, ang, gripper, stamp)
    return cmd, st


def _all_finite(*xs) -> bool:
    return all(np.all(np.isfinite(x)) for x in xs)


def _norm(v: np.ndarray) -> float:
    with np.errstate(over="ignore"):
        return float(np.linalg.norm(v))


def test_fuzz_emitted_commands_always_within_limits() -> None:
    lim = limits()
    f = SafetyFilter(lim)
    rng = np.random.default_rng(1234)
    seen = {v: 0 for v in Verdict}
    for _ in range(8000):
        cmd, st = _rand_case(rng)
        d = f.filter(cmd, st, NOW)
        seen[d.verdict] += 1
        assert (d.reasons == ()) == (d.verdict is Verdict.OK)
        fields_ = (cmd.position, cmd.quat_wxyz) if isinstance(cmd, PoseCommand) else (cmd.linear, cmd.angular)
        stale = NOW - cmd.stamp > lim.max_command_age_s or cmd.stamp - NOW > lim.max_clock_skew_s
        bad_state = st is None or not _all_finite(st.ee_position, st.ee_quat_wxyz, st.stamp)
        bad_state = bad_state or NOW - st.stamp > 0.2 or st.stamp - NOW > 0.05
        too_hard = st is not None and st.wrench_force is not None and not _norm(st.wrench_force) <= 30
        if not _all_finite(*fields_, cmd.gripper) or stale or bad_state or too_hard:
            assert d.hold, (cmd, st, d)
        if d.hold:
            _check_hold(d, st)
            continue
        out, cur_q = d.command, st.ee_quat_wxyz / np.linalg.norm(st.ee_quat_wxyz)
        assert type(out) is type(cmd) and out.stamp == cmd.stamp
        assert -1.0 <= out.gripper <= 1.0 and math.isfinite(out.gripper)
        if isinstance(out, PoseCommand):
            assert _all_finite(out.position, out.quat_wxyz)
            assert np.all(out.position >= LOW) and np.all(out.position <= HIGH)
            assert np.linalg.norm(out.position - st.ee_position) <= lim.max_step_m + 1e-9
            assert abs(np.linalg.norm(out.quat_wxyz) - 1.0) <= 1e-9
            assert angle_between(cur_q, out.quat_wxyz) <= lim.max_rot_step_rad + 1e-6
        else:
            assert _all_finite(out.linear, out.angular)
            assert np.linalg.norm(out.linear) <= lim.max_linear_speed + 1e-9
            assert np.linalg.norm(out.angular) <= lim.max_angular_speed + 1e-9
            # Over the command's horizon the ee stays in the box, or on an axis where it is already
            # outside it moves only back toward the box.
            end = st.ee_position + out.linear * lim.max_command_age_s
            inside = (st.ee_position >= LOW) & (st.ee_position <= HIGH)
            assert np.all(~inside | ((end >= LOW - 1e-9) & (end <= HIGH + 1e-9)))
            assert np.all(inside | (out.linear * (st.ee_position > HIGH) <= 0))
            assert np.all(inside | (out.linear * (st.ee_position < LOW) >= 0))
    assert min(seen.values()) > 400, seen  # every verdict well exercised
    assert sum(f.verdict_counts.values()) == 8000
    assert f.reason_counts[Reason.INTERNAL.value] == 0


def _check_hold(d: Decision, st: ArmState | None) -> None:
    """A hold never emits motion: nothing, or the measured pose (inside the box) as a pose target."""
    assert d.reasons
    if d.command is None:
        return
    assert isinstance(d.command, PoseCommand) and st is not None
    np.testing.assert_array_equal(d.command.position, st.ee_position)
    assert np.all(d.command.position >= LOW) and np.all(d.command.position <= HIGH)
    q = st.ee_quat_wxyz / np.linalg.norm(st.ee_quat_wxyz)
    np.testing.assert_allclose(d.command.quat_wxyz, q)
    assert -1.0 <= d.command.gripper <= 1.0


def test_fuzz_ok_poses_are_passed_as_is() -> None:
    f = SafetyFilter(limits())
    rng = np.random.default_rng(7)
    n_ok = 0
    for _ in range(2000):
        cur = rng.uniform(LOW, HIGH)
        target = np.clip(cur + rng.normal(0.0, 0.01, 3), LOW, HIGH)
        q = quat_about(rng.normal(size=3), rng.uniform(0.0, 0.19))
        d = f.filter(pose(target, q, rng.uniform(-1, 1)), state(pos=cur), NOW)
        if np.linalg.norm(target - cur) <= 0.03:
            assert d.ok, d
            np.testing.assert_array_equal(d.command.position, target)
            np.testing.assert_allclose(d.command.quat_wxyz, q, atol=1e-12)
            n_ok += 1
    assert n_ok > 1000
