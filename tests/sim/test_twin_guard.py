"""The twin guard: commands that would put the arm into the table, into itself, past a joint limit
or out of the workspace are refused; with the guard in the ArmNode none of them reaches a driver.
"""

from __future__ import annotations

import mujoco
import numpy as np
import pytest
from arm_doubles import RecordingArm, SteppedClock

from drivers.arm import ArmReading
from drivers.rotations import quat_mul, rotvec_to_quat
from drivers.safety import PoseCommand, SafetyFilter, SafetyLimits, TwistCommand
from robot_rl.ros import codec, messages
from robot_rl.ros.inproc import InprocBus, InprocTransport
from robot_rl.ros.nodes.arm_node import ArmNode
from sim.assets import HOME_QPOS, arm_only_xml
from sim.controller import DiffIKController
from sim.sim_arm import SimArm
from sim.twin_guard import GuardVerdict, TwinGuard, TwinGuardConfig

OPEN_BOX = TwinGuardConfig(workspace_low=(-1.0, -1.0, -1.0), workspace_high=(1.0, 1.0, 1.0))
# The hand folded back onto the forearm: within every joint range, but link4 and the hand overlap.
FOLDED_QPOS = np.array([0.443, -0.217, -0.701, -2.778, -0.583, 0.055, 0.944])
# A box whose floor lies under the table top: a config slip the SafetyFilter cannot see (it knows
# only the box), so only the twin stands between such a command and the arm.
LOW_BOX = SafetyLimits((0.2, -0.3, -0.1), (0.7, 0.3, 0.6), 0.03, 0.2, 0.25, 1.0, 30.0, 0.2)
LOW_BOX_GUARD = TwinGuardConfig(workspace_low=LOW_BOX.workspace_low, workspace_high=LOW_BOX.workspace_high)


def fk(guard: TwinGuard, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ee pose of joints q, on a scratch MjData of the guard's model."""
    data = mujoco.MjData(guard.model)
    data.qpos[guard.ctrl.qpos_slice] = q
    mujoco.mj_kinematics(guard.model, data)
    return guard.ctrl.ee_pose(data)


def at_home(config: TwinGuardConfig | None = None) -> tuple[TwinGuard, np.ndarray, np.ndarray]:
    guard = TwinGuard(config=config)
    guard.mirror(HOME_QPOS, gripper=-1.0)
    return guard, *fk(guard, HOME_QPOS)


def pose(position: object, quat: np.ndarray, gripper: float = -1.0) -> PoseCommand:
    return PoseCommand(np.asarray(position, dtype=np.float64), quat, gripper, 0.0)


def test_a_reachable_pose_is_accepted() -> None:
    guard, ee, quat = at_home()
    for offset in ([0.0, 0.0, 0.0], [0.05, 0.05, -0.1], [0.1, -0.1, -0.3]):
        verdict = guard.check(pose(ee + offset, quat))
        assert verdict == GuardVerdict(True, ""), (offset, verdict.reason)
    np.testing.assert_allclose(guard.data.qpos[guard.ctrl.qpos_slice], HOME_QPOS)  # mirror untouched


def test_a_pose_through_the_table_is_refused() -> None:
    guard, ee, quat = at_home(OPEN_BOX)  # a box that lets it through: the table alone refuses it
    verdict = guard.check(pose([ee[0], ee[1], -0.05], quat))
    assert not verdict.ok and "scene contact" in verdict.reason and "table" in verdict.reason
    assert "workspace" not in verdict.reason and "self-collision" not in verdict.reason


def test_a_pose_that_folds_the_arm_into_itself_is_refused() -> None:
    guard = TwinGuard(config=OPEN_BOX)
    assert np.all((guard.ctrl.q_low <= FOLDED_QPOS) & (guard.ctrl.q_high >= FOLDED_QPOS))
    near = FOLDED_QPOS + 0.15 * (HOME_QPOS - FOLDED_QPOS)  # a clear posture 4 cm from the fold
    guard.mirror(near, gripper=-1.0)
    assert guard.check(pose(*fk(guard, near))).ok
    verdict = guard.check(pose(*fk(guard, FOLDED_QPOS)))
    assert not verdict.ok and "self-collision" in verdict.reason
    assert "link4" in verdict.reason and "hand" in verdict.reason


def test_a_pose_outside_the_workspace_is_refused() -> None:
    guard, _, quat = at_home()
    high = np.array(guard.cfg.workspace_high)
    verdict = guard.check(pose([high[0] + 0.08, 0.0, 0.3], quat))
    assert not verdict.ok and "outside the workspace box" in verdict.reason


def test_a_pose_past_a_joint_limit_is_refused() -> None:
    guard, _, quat = at_home(OPEN_BOX)
    # Far under the shoulder, beside the base: the elbow must bend past joint4's range to get there.
    verdict = guard.check(pose([0.15, 0.0, 0.2], quat))
    assert not verdict.ok and "joint4" in verdict.reason and "beyond its range" in verdict.reason


def test_a_twist_is_judged_where_it_leaves_the_arm() -> None:
    guard = TwinGuard(config=OPEN_BOX)
    _, quat = fk(guard, HOME_QPOS)
    guard.mirror(solve(guard, [0.45, 0.0, 0.05], quat), gripper=-1.0)  # fingertips 4 cm over the table
    speed = 0.25  # m/s: over the 0.2 s horizon it travels 5 cm
    assert speed * guard.cfg.twist_horizon_s > 0.05 - 0.01
    verdict = guard.check(TwistCommand(np.array([0.0, 0.0, -speed]), np.zeros(3), -1.0, 0.0))
    assert not verdict.ok and "table" in verdict.reason
    assert guard.check(TwistCommand(np.array([0.0, 0.0, speed]), np.zeros(3), -1.0, 0.0)).ok
    assert guard.check(TwistCommand(np.array([0.0, speed, 0.0]), np.zeros(3), -1.0, 0.0)).ok


def test_an_arm_already_on_the_table_may_only_back_out() -> None:
    guard = TwinGuard(config=OPEN_BOX)
    _, quat = fk(guard, HOME_QPOS)
    pressed = np.array([0.45, 0.0, 0.005])  # fingertips 5 mm into the table
    guard.mirror(solve(guard, pressed, quat), gripper=-1.0)
    assert guard.check(pose(pressed + np.array([0.0, 0.0, 0.02]), quat)).ok  # up and out
    deeper = guard.check(pose(pressed - np.array([0.0, 0.0, 0.005]), quat))
    assert not deeper.ok and "table" in deeper.reason
    assert not guard.check(pose(pressed, quat)).ok  # staying pressed is no way out either


def test_mirroring_malformed_joints_raises() -> None:
    guard = TwinGuard()
    with pytest.raises(ValueError, match="7 finite joint positions"):
        guard.mirror(HOME_QPOS[:6])
    bad = HOME_QPOS.copy()
    bad[2] = np.nan
    with pytest.raises(ValueError, match="7 finite joint positions"):
        guard.mirror(bad)


def test_no_mirror_or_a_malformed_command_is_refused() -> None:
    guard = TwinGuard()
    _, quat = fk(guard, HOME_QPOS)
    assert guard.check(pose([0.4, 0.0, 0.3], quat)) == GuardVerdict(False, "no joint state mirrored yet")
    guard.mirror(HOME_QPOS)
    assert not guard.check(pose([np.nan, 0.0, 0.3], quat)).ok
    assert not guard.check(PoseCommand(np.zeros(2), quat, -1.0, 0.0)).ok
    assert not guard.check("up").ok  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("workspace_low", (0.8, 0.0, 0.0)),  # above workspace_high on x
        ("workspace_high", (0.7, np.nan, 0.6)),
        ("margin_m", -0.001),
        ("ik_iterations", 0),
        ("ik_tolerance_m", 0.0),
        ("twist_horizon_s", 0.0),
    ],
)
def test_config_rejects_bad_values(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        TwinGuardConfig(**{field: value})


def test_an_external_arm_xml_is_guarded_the_same(tmp_path) -> None:
    path = tmp_path / "arm.xml"
    path.write_text(arm_only_xml())
    guard, ee, quat = at_home(TwinGuardConfig(workspace_low=(-1.0, -1.0, -1.0), arm_xml=str(path)))
    assert guard.check(pose(ee + np.array([0.05, 0.0, -0.1]), quat)).ok
    verdict = guard.check(pose([ee[0], ee[1], -0.05], quat))
    assert not verdict.ok and "table" in verdict.reason


def solve(guard: TwinGuard, position: object, quat: np.ndarray) -> np.ndarray:
    """Joints that put the ee at a pose, by static IK on a scratch copy of the guard's model."""
    data = mujoco.MjData(guard.model)
    data.qpos[guard.ctrl.qpos_slice] = HOME_QPOS
    ik = DiffIKController(guard.model)
    ik.target_pos, ik.target_quat = np.asarray(position, dtype=np.float64), quat
    assert ik.solve_static(guard.model, data, iters=400)
    return data.qpos[guard.ctrl.qpos_slice].copy()


# ---- the guard in the ArmNode -------------------------------------------------------------------


class SpyGuard:
    """A TwinGuard that remembers every command it judged and its verdict."""

    def __init__(self, inner: TwinGuard) -> None:
        self.inner = inner
        self.judged: list[tuple[PoseCommand | TwistCommand, GuardVerdict]] = []

    def mirror(self, joint_positions: np.ndarray) -> None:
        self.inner.mirror(joint_positions)

    def check(self, command: PoseCommand | TwistCommand, reading: ArmReading | None) -> GuardVerdict:
        verdict = self.inner.check(command, reading)
        self.judged.append((command, verdict))
        return verdict


class GuardedRig:
    """An ArmNode over the twin arm, guarded by a second twin that only mirrors it."""

    def __init__(self) -> None:
        self.clock = SteppedClock()
        self.twin = SimArm(clock=self.clock)
        self.arm = RecordingArm(self.twin)
        self.guard = SpyGuard(TwinGuard(config=LOW_BOX_GUARD))
        bus = InprocBus()
        self.transport = InprocTransport(bus)
        self.node = ArmNode(
            self.transport, self.arm, SafetyFilter(LOW_BOX), clock=self.clock, guard=self.guard
        )
        client = InprocTransport(bus)
        self._pose = client.create_publisher("target_pose", codec.POSE_STAMPED)
        self._twist = client.create_publisher("target_twist", codec.TWIST_STAMPED)
        self._gripper = client.create_publisher("gripper/command", codec.FLOAT64)
        self.home_quat = self.twin.state().ee_quat_wxyz

    def pose(self, position: object, quat: object = None) -> None:
        quat = self.home_quat if quat is None else quat
        self._pose.publish(messages.pose_stamped_msg(position, quat, self.clock.t, "base"))
        self._drain()

    def twist(self, linear: object, angular: object = (0.0, 0.0, 0.0)) -> None:
        self._twist.publish(messages.twist_stamped_msg(linear, angular, self.clock.t, "base"))
        self._drain()

    def gripper(self, value: float) -> None:
        self._gripper.publish(messages.float64_msg(value))
        self._drain()

    def step(self, seconds: float) -> None:
        self.twin.advance(seconds)
        self.clock.t += seconds

    def _drain(self) -> None:
        while self.transport.spin_once(0.0):
            pass

    def assert_nothing_refused_was_sent(self) -> None:
        refused = {id(command) for command, verdict in self.guard.judged if not verdict.ok}
        assert not any(id(command) in refused for command, _ in self.arm.sent)
        # And a fresh twin, judging each sent command in the state it was sent in, agrees.
        judge = TwinGuard(config=LOW_BOX_GUARD)
        for command, reading in self.arm.sent:
            verdict = judge.check(command, reading)
            assert verdict.ok, verdict.reason

    def table_contacts(self) -> list[str]:
        m, d = self.twin.model, self.twin.data
        table = m.geom("table").id
        return [
            m.body(m.geom_bodyid[c.geom[0] + c.geom[1] - table]).name
            for c in d.contact[: d.ncon]
            if table in (c.geom[0], c.geom[1])
        ]


def test_a_command_into_the_table_never_reaches_the_arm() -> None:
    rig = GuardedRig()
    for _ in range(40):  # straight down; the filter passes 3 cm steps of it, its box reaching under the table
        rig.pose([0.45, 0.0, -0.05])
        rig.step(0.05)
    c = rig.node.counters
    assert c["passed"] > 0 and c["guard_refused"] > 0 and c["held"] == 0
    assert rig.arm.holds >= c["guard_refused"]
    ee_z = rig.twin.state().ee_position[2]
    assert ee_z < 0.05  # it came down to the table (the project's usual box would stop at 5 cm)
    refused = c["guard_refused"]
    for _ in range(10):  # a twist down from there is refused too
        rig.twist([0.0, 0.0, -0.25])
        rig.step(0.02)
    assert c["guard_refused"] == refused + 10
    assert rig.twin.state().ee_position[2] > ee_z - 1e-3  # it went no lower
    refusal = next(v.reason for _, v in rig.guard.judged if not v.ok)
    assert "table" in refusal
    rig.assert_nothing_refused_was_sent()
    assert rig.table_contacts() == []  # the hand and fingers stopped clear of the table


def test_fuzzed_commands_refused_by_the_twin_never_reach_the_arm() -> None:
    rig = GuardedRig()
    rng = np.random.default_rng(7)
    goal = rig.twin.state().ee_position
    for i in range(250):
        if i % 25 == 0:  # a new place to head for: under the table, at the base, beyond reach
            goal = rng.uniform([-0.3, -0.5, -0.15], [0.8, 0.5, 0.4])
        kind = i % 4
        if kind in (0, 1):  # the filter passes a step towards it, tilted at random
            rig.pose(goal, quat_mul(rig.home_quat, rotvec_to_quat(rng.normal(0.0, 0.4, 3))))
        elif kind == 2:
            heading = goal - rig.twin.state().ee_position
            rig.twist(0.25 * heading / (np.linalg.norm(heading) + 1e-9), rng.normal(0.0, 0.3, 3))
        else:
            rig.gripper(float(rng.uniform(-1.5, 1.5)))
        rig.step(0.06)
    c = rig.node.counters
    assert c["passed"] > 0 and c["gripper_passed"] > 0 and c["guard_refused"] > 0, c
    assert c["gripper_passed"] == len(rig.arm.grippers)
    rig.assert_nothing_refused_was_sent()


def test_a_guard_that_fails_refuses_and_holds() -> None:
    class BrokenGuard:
        def mirror(self, joint_positions: np.ndarray) -> None:
            pass

        def check(self, command: object, reading: object) -> GuardVerdict:
            raise RuntimeError("bug in the twin")

    rig = GuardedRig()
    rig.node.guard = BrokenGuard()
    holds = rig.arm.holds
    rig.pose(rig.twin.state().ee_position)
    rig.gripper(1.0)
    assert rig.arm.sent == [] and rig.arm.grippers == []
    assert rig.node.counters["guard_errors"] == 2 and rig.node.counters["guard_refused"] == 2
    assert rig.arm.holds == holds + 1  # the pose command held the arm; a gripper command moves nothing
