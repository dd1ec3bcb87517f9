"""MJCF for a 7-DoF Panda-like arm with a parallel gripper, a table and task objects.

Written here from the Franka Emika Panda's published kinematics (Craig / modified DH
parameters), joint limits and approximate link masses. Links are primitive geoms; nothing is
copied from a model file. The table top is the plane z = 0 and the arm's base stands on it at
the origin, x pointing away from the robot over the table.

Names the rest of sim/ relies on (an external arm given through ``arm_xml`` must use them too):
    joints     joint1 .. joint7 (hinges), finger_joint1, finger_joint2 (slides, 0 = closed)
    actuators  actuator1 .. actuator7: position servos whose ctrl is the joint angle target;
               gripper: one actuator whose ctrlrange maps [closed, open] = [low, high]
    site       ee_site: the tool centre point between the fingertips (added 0.1034 m below the
               flange on body ``hand`` when an external arm lacks it)
    bodies     hand (carries the wrist camera; finger geoms are found by their body names
               left_finger / right_finger)
"""

from __future__ import annotations

import math
import warnings

import mujoco
import numpy as np

# (a_{i-1}, d_i, alpha_{i-1}) per joint, Franka's modified DH table; the flange row last.
PANDA_DH: tuple[tuple[float, float, float], ...] = (
    (0.0, 0.333, 0.0),
    (0.0, 0.0, -math.pi / 2),
    (0.0, 0.316, math.pi / 2),
    (0.0825, 0.0, math.pi / 2),
    (-0.0825, 0.384, -math.pi / 2),
    (0.0, 0.0, math.pi / 2),
    (0.088, 0.0, math.pi / 2),
)
FLANGE_D = 0.107
TCP_OFFSET = 0.1034  # flange to the point between the fingertips (Franka hand)
# Franka datasheet limits, rad.
JOINT_LIMITS: tuple[tuple[float, float], ...] = (
    (-2.8973, 2.8973),
    (-1.7628, 1.7628),
    (-2.8973, 2.8973),
    (-3.0718, -0.0698),
    (-2.8973, 2.8973),
    (-0.0175, 3.7525),
    (-2.8973, 2.8973),
)
TORQUE_LIMITS = (87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0)
# Approximate link masses, kg (published dynamic identifications of the Panda).
LINK_MASSES = (4.97, 0.65, 3.23, 3.59, 1.23, 1.67, 0.74)
HAND_MASS = 0.73
FINGER_TRAVEL = 0.04  # per finger; max opening 8 cm
# The servo gains: stiff enough to track 2.5 cm per 0.1 s with little lag, soft enough to be
# stable at 500 Hz with the implicit integrator.
ARM_KP = (1500.0, 1500.0, 1500.0, 1500.0, 400.0, 400.0, 200.0)
ARM_KV = (100.0, 100.0, 100.0, 100.0, 25.0, 25.0, 12.0)
HOME_QPOS = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785])

ARM_JOINTS = tuple(f"joint{i}" for i in range(1, 8))
ARM_ACTUATORS = tuple(f"actuator{i}" for i in range(1, 8))
FINGER_JOINTS = ("finger_joint1", "finger_joint2")
EE_SITE = "ee_site"

# contype/conaffinity: 1 = things that touch (table, objects, hand, fingers); arm links use 2
# with affinity 0 so they never collide (cheaper, and the tasks keep them clear of the table).
_ARM_LINK = 'contype="2" conaffinity="0"'


def _wrist_cam_quat() -> list[float]:
    # Camera looks along its -z: towards the fingertips, tilted slightly inwards.
    x, y = np.array([0.0, -1.0, 0.0]), np.array([-0.966, 0.0, -0.26])
    mat = np.stack([x, y, np.cross(x, y)], axis=1)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, mat.flatten())
    return quat.tolist()


_WRIST_CAM_QUAT = _wrist_cam_quat()


def _fmt(v: np.ndarray | tuple[float, ...]) -> str:
    return " ".join(f"{x:.6g}" for x in v)


def _rotx_quat(alpha: float) -> tuple[float, float, float, float]:
    return (math.cos(alpha / 2), math.sin(alpha / 2), 0.0, 0.0)


def _child_offset(a: float, d: float, alpha: float) -> np.ndarray:
    """Origin of frame i in frame i-1: TransX(a) RotX(alpha) TransZ(d)."""
    return np.array([a, -math.sin(alpha) * d, math.cos(alpha) * d])


def _link_geoms(i: int, next_offset: np.ndarray) -> str:
    """Joint housing (cylinder on the joint axis) plus a capsule to the next joint."""
    mass = LINK_MASSES[i]
    rgba = "0.95 0.95 0.95 1" if i % 2 == 0 else "0.25 0.25 0.28 1"
    geoms = [f'<geom type="cylinder" size="0.06 0.06" mass="{mass * 0.4:.3f}" rgba="{rgba}" {_ARM_LINK}/>']
    if np.linalg.norm(next_offset) > 1e-6:
        geoms.append(
            f'<geom type="capsule" fromto="0 0 0 {_fmt(next_offset)}" size="0.055" '
            f'mass="{mass * 0.6:.3f}" rgba="{rgba}" {_ARM_LINK}/>'
        )
    elif i == 0:
        # link1 hangs down to the base; the next frame coincides with this one.
        geoms.append(
            f'<geom type="capsule" fromto="0 0 -0.2 0 0 0" size="0.06" mass="{mass * 0.6:.3f}" '
            f'rgba="{rgba}" {_ARM_LINK}/>'
        )
    else:
        geoms.append(f'<geom type="sphere" size="0.065" mass="{mass * 0.6:.3f}" rgba="{rgba}" {_ARM_LINK}/>')
    return "\n".join(geoms)


def _finger(name: str, joint: str, quat: str) -> str:
    # The inner pad face sits at y = q (finger joint), so the opening is q1 + q2.
    return f"""
<body name="{name}" pos="0 0 0.0584" quat="{quat}" gravcomp="1">
  <joint name="{joint}" type="slide" axis="0 1 0" range="0 {FINGER_TRAVEL}" damping="5" armature="0.05"/>
  <geom type="box" pos="0 0.012 0.008" size="0.01 0.012 0.01" mass="0.015" rgba="0.25 0.25 0.28 1"/>
  <geom name="{name}_pad" type="box" pos="0 0.006 0.035" size="0.011 0.006 0.02" mass="0.015"
        rgba="0.15 0.15 0.15 1" friction="1.5 0.02 0.001" condim="4"/>
</body>"""


def _hand() -> str:
    fingers = _finger("left_finger", FINGER_JOINTS[0], "1 0 0 0") + _finger(
        "right_finger", FINGER_JOINTS[1], "0 0 0 1"
    )
    return f"""
<body name="hand" pos="0 0 {FLANGE_D}" quat="{_fmt((math.cos(-math.pi / 8), 0, 0, math.sin(-math.pi / 8)))}"
      gravcomp="1">
  <geom type="cylinder" pos="0 0 0.005" size="0.04 0.005" mass="0.1" rgba="0.25 0.25 0.28 1"/>
  <geom type="box" pos="0 0 0.035" size="0.025 0.1 0.023" mass="{HAND_MASS - 0.1:.3f}"
        rgba="0.95 0.95 0.95 1"/>
  <site name="{EE_SITE}" pos="0 0 {TCP_OFFSET}" size="0.006" rgba="1 0 0 0.5" group="3"/>
  <camera name="wrist" pos="0.07 0 0.01" xyaxes="0 -1 0 -0.966 0 -0.26" fovy="75"/>
  {fingers}
</body>"""


def arm_xml_body() -> str:
    """The arm's kinematic chain as nested <body> elements, base at the world origin."""
    tail = _hand()
    for i in reversed(range(7)):
        a, d, alpha = PANDA_DH[i]
        next_offset = (
            _child_offset(*PANDA_DH[i + 1][:2], PANDA_DH[i + 1][2])
            if i < 6
            else np.array([0.0, 0.0, FLANGE_D])
        )
        lo, hi = JOINT_LIMITS[i]
        tail = f"""
<body name="link{i + 1}" pos="{_fmt(_child_offset(a, d, alpha))}" quat="{_fmt(_rotx_quat(alpha))}"
      gravcomp="1">
  <joint name="{ARM_JOINTS[i]}" axis="0 0 1" range="{lo} {hi}" damping="1" armature="0.1"/>
  {_link_geoms(i, next_offset)}
  {tail}
</body>"""
    return f"""
<body name="link0">
  <geom type="cylinder" pos="0 0 0.07" size="0.08 0.07" mass="3" rgba="0.95 0.95 0.95 1" {_ARM_LINK}/>
  {tail}
</body>"""


def _arm_actuators() -> str:
    lines = []
    for i, (lo, hi) in enumerate(JOINT_LIMITS):
        tau = TORQUE_LIMITS[i]
        lines.append(
            f'<position name="{ARM_ACTUATORS[i]}" joint="{ARM_JOINTS[i]}" kp="{ARM_KP[i]}" '
            f'kv="{ARM_KV[i]}" ctrlrange="{lo} {hi}" forcerange="{-tau} {tau}"/>'
        )
    # Tendon = mean finger opening; the equality keeps the fingers symmetric. Force-limited so a
    # grasp squeezes with a bounded ~40 N rather than whatever the servo error would give.
    lines.append(
        f'<position name="gripper" tendon="finger_split" kp="2000" ctrlrange="0 {FINGER_TRAVEL}" '
        'forcerange="-40 40"/>'
    )
    return "\n".join(lines)


def _gripper_coupling() -> str:
    return f"""
<tendon>
  <fixed name="finger_split">
    <joint joint="{FINGER_JOINTS[0]}" coef="0.5"/>
    <joint joint="{FINGER_JOINTS[1]}" coef="0.5"/>
  </fixed>
</tendon>
<equality>
  <joint joint1="{FINGER_JOINTS[0]}" joint2="{FINGER_JOINTS[1]}" solref="0.005 1"/>
</equality>
<contact>
  <exclude body1="left_finger" body2="right_finger"/>
</contact>"""


def scene_xml(
    objects_xml: str = "", physics_hz: float = 500.0, with_arm: bool = True, offscreen_size: int = 640
) -> str:
    """Full scene: table, lights, front camera, the arm (unless with_arm=False) and objects.

    objects_xml is inserted into <worldbody> (task objects, goal markers).
    """
    arm = arm_xml_body() if with_arm else ""
    arm_extra = f"{_gripper_coupling()}\n<actuator>\n{_arm_actuators()}\n</actuator>" if with_arm else ""
    return f"""
<mujoco model="robot_rl_scene">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{1.0 / physics_hz:.6g}" integrator="implicitfast" cone="elliptic" impratio="5"/>
  <visual>
    <global offwidth="{offscreen_size}" offheight="{offscreen_size}"/>
    <quality shadowsize="0"/>
  </visual>
  <default>
    <geom contype="1" conaffinity="1" friction="1 0.005 0.0001" solref="0.005 1"/>
  </default>
  <worldbody>
    <light pos="0.4 0 1.5" dir="0 0 -1" diffuse="0.8 0.8 0.8"/>
    <light pos="1.2 0.8 1.0" dir="-1 -0.6 -0.8" diffuse="0.3 0.3 0.3"/>
    <geom name="table" type="box" pos="0.35 0 -0.02" size="0.65 0.6 0.02" rgba="0.55 0.45 0.35 1"/>
    <camera name="front" pos="1.25 0 0.55" xyaxes="0 1 0 -0.55 0 0.835" fovy="50"/>
    {arm}
    {objects_xml}
  </worldbody>
  {arm_extra}
</mujoco>"""


def arm_only_xml() -> str:
    """Our arm as a standalone MJCF file: a template for an external ``arm_xml``."""
    return f"""
<mujoco model="robot_rl_arm">
  <compiler angle="radian" autolimits="true"/>
  <worldbody>{arm_xml_body()}</worldbody>
  {_gripper_coupling()}
  <actuator>
{_arm_actuators()}
  </actuator>
</mujoco>"""


def build_model(
    objects_xml: str = "", physics_hz: float = 500.0, arm_xml: str | None = None, offscreen_size: int = 640
) -> mujoco.MjModel:
    """Compile the scene; with arm_xml, attach that file's arm instead of ours (see module doc)."""
    if arm_xml is None:
        return mujoco.MjModel.from_xml_string(scene_xml(objects_xml, physics_hz, True, offscreen_size))
    scene = mujoco.MjSpec.from_string(scene_xml(objects_xml, physics_hz, False, offscreen_size))
    arm = mujoco.MjSpec.from_file(arm_xml)
    hand = arm.body("hand")
    if hand is None:
        raise ValueError(f"arm_xml {arm_xml!r} has no body named 'hand'")
    if arm.site(EE_SITE) is None:
        hand.add_site(name=EE_SITE, pos=[0.0, 0.0, TCP_OFFSET])
    if arm.camera("wrist") is None:
        hand.add_camera(name="wrist", pos=[0.07, 0, 0.01], quat=_WRIST_CAM_QUAT, fovy=75)
    frame = scene.worldbody.add_frame()
    frame.attach_body(arm.worldbody.first_body(), "", "")
    with warnings.catch_warnings():
        # Empty prefix on purpose: the rest of sim/ looks the arm up by its plain names.
        warnings.filterwarnings("ignore", message="Attaching a spec with an empty prefix")
        model = scene.compile()
    model.opt.timestep = 1.0 / physics_hz
    return model
