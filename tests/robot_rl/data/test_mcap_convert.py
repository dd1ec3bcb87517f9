"""mcap_to_zarr on a session recorded by the Recorder from an in-process robot stack (fake clock):
episode splitting, no look-ahead, action scaling and clipping, the state layout of robot_state,
images, rewards, the other step keys; and clear errors for bags it cannot convert."""

from __future__ import annotations

import re
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from robot_rl.cli import main as cli_main
from robot_rl.data.episode_store import EpisodeStore
from robot_rl.data.mcap_convert import BagError, ConvertConfig, mcap_to_zarr
from robot_rl.ros import codec, messages
from robot_rl.ros.inproc import InprocBus, InprocTransport
from robot_rl.ros.record import Recorder
from robot_rl.transition import STEP_KEYS
from sim.task_spec import OBJECT_STATE_DIM, robot_state, state_dim

T0_NS = 1_700_000_000_000_000_000
ROBOT_DT_NS = 20_000_000  # the robot publishes at 50 Hz; iteration i is at T0 + i * 20 ms
TICK_EVERY = 5  # iterations per control tick at the converter's default 10 Hz
N_ITER = 350
STRETCH_A, STRETCH_B = (25, 150), (250, 325)  # iterations with teleop commands
VEL_A, VEL_B = np.array([0.1, -0.05, 0.02]), np.array([0.5, 0.0, 0.0])  # target speed, m/s
GRIPPER_CLOSES_AT = 100
SUCCESS = (140, 200)  # task/success reads true over these iterations (published every 10)
TARGET0 = np.array([0.4, 0.0, 0.3])
EE_DOWN = (0.0, 1.0, 0.0, 0.0)
JOINTS = [f"joint{k}" for k in range(1, 8)]
IMAGE = "/wrist/color/image_raw"
CAMERAS = {"wrist": IMAGE}
TOPICS = {
    "/joint_states": codec.JOINT_STATE,
    "/current_pose": codec.POSE_STAMPED,
    "/gripper/joint_states": codec.JOINT_STATE,
    "/object_pose": codec.POSE_STAMPED,
    "/target_pose": codec.POSE_STAMPED,
    "/gripper/command": codec.FLOAT64,
    "/task/success": codec.BOOL,
    IMAGE: codec.IMAGE,
}


@dataclass
class Session:
    """A recorded bag and what was published, by topic, as (log ns, message)."""

    bag: Path
    log: dict[str, list[tuple[int, Any]]]

    def latest(self, topic: str, t_ns: int) -> Any:
        return max((m for m in self.log[topic] if m[0] <= t_ns), key=lambda m: m[0])[1]


def _frame(i: int) -> np.ndarray:
    frame = np.zeros((6, 8, 3), np.uint8)
    frame[..., 0] = i // 2 % 256  # which frame it is
    frame[..., 1] = np.arange(8)[None, :] * 30  # a pattern, so a transposed image shows
    return frame


def record_session(bag: Path, camera_on: Any = lambda i: True) -> Session:
    """Record N_ITER iterations of the robot stack into bag: arm, gripper, object at 50 Hz,
    commands in two stretches, success now and then, a 25 Hz camera 1 ns after its iteration."""
    bus, clock = InprocBus(), [T0_NS]
    recorder_node, node = InprocTransport(bus), InprocTransport(bus)
    recorder = Recorder(recorder_node, bag, list(TOPICS.items()), clock=lambda: clock[0])
    publishers = {topic: node.create_publisher(topic, msg_type) for topic, msg_type in TOPICS.items()}
    log: dict[str, list[tuple[int, Any]]] = defaultdict(list)

    def publish(topic: str, msg: Any, at_ns: int) -> None:
        clock[0] = at_ns
        publishers[topic].publish(msg)
        recorder_node.spin_once(0.0)
        log[topic].append((at_ns, msg))

    for i in range(N_ITER):
        ns, t = T0_NS + i * ROBOT_DT_NS, i * ROBOT_DT_NS * 1e-9
        stamp = ns * 1e-9
        q = 0.1 * np.arange(7) + t
        publish("/joint_states", messages.joint_state_msg(JOINTS, q, 0.3 + q, stamp), ns)
        publish(
            "/current_pose",
            messages.pose_stamped_msg([0.4 + 0.01 * t, 0.02 * t, 0.3], EE_DOWN, stamp, "base"),
            ns,
        )
        publish(
            "/gripper/joint_states",
            messages.joint_state_msg(["gripper"], [0.08 - 0.01 * t], [0.0], stamp),
            ns,
        )
        quat = (np.cos(t), 0.0, 0.0, np.sin(t))  # its w turns negative: the state flips it back
        publish("/object_pose", messages.pose_stamped_msg([0.5, 0.1 * t, 0.02], quat, stamp, "base"), ns)
        for (first, last), vel in ((STRETCH_A, VEL_A), (STRETCH_B, VEL_B)):
            if first <= i <= last:
                target = TARGET0 + vel * (i - first) * ROBOT_DT_NS * 1e-9
                publish("/target_pose", messages.pose_stamped_msg(target, EE_DOWN, stamp, "base"), ns)
                publish("/gripper/command", messages.float64_msg(1.0 if i >= GRIPPER_CLOSES_AT else -1.0), ns)
        if i % 10 == 0:
            publish("/task/success", messages.bool_msg(SUCCESS[0] <= i < SUCCESS[1]), ns)
        if i % 2 == 0 and camera_on(i):
            publish(IMAGE, messages.image_msg(_frame(i), stamp, "wrist"), ns + 1)
    recorder.close()
    return Session(bag, log)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Session:
    return record_session(tmp_path_factory.mktemp("rec") / "bag")


def tick_ns(i: int) -> int:
    return T0_NS + i * ROBOT_DT_NS


def expected_state(s: Session, t_ns: int, with_object: bool) -> np.ndarray:
    _, q, dq, _ = messages.joint_state_from_msg(s.latest("/joint_states", t_ns))
    ee_pos, ee_quat, _ = messages.pose_from_msg(s.latest("/current_pose", t_ns))
    width = messages.joint_state_from_msg(s.latest("/gripper/joint_states", t_ns))[1][0]
    obj = messages.pose_from_msg(s.latest("/object_pose", t_ns))[:2] if with_object else None
    return robot_state(ee_pos, ee_quat, width, q, dq, obj)


def expected_action(s: Session, now_ns: int, next_ns: int, pos_scale: float) -> np.ndarray:
    target = [messages.pose_from_msg(s.latest("/target_pose", t))[0] for t in (now_ns, next_ns)]
    gripper = s.latest("/gripper/command", next_ns).data
    return np.clip(np.append((target[1] - target[0]) / pos_scale, gripper), -1, 1).astype(np.float32)


def test_episodes_steps_and_observations(session: Session, tmp_path: Path) -> None:
    cfg = ConvertConfig(cameras=CAMERAS, with_object=True)
    summary = mcap_to_zarr(session.bag, tmp_path / "demos.zarr", cfg)
    store = EpisodeStore(tmp_path / "demos.zarr", mode="r")
    # A ends at the tick where success is first read; B at one tick past its last command
    first_success_tick = -(-(SUCCESS[0] - STRETCH_A[0]) // TICK_EVERY)
    ticks_b = -(-(STRETCH_B[1] - STRETCH_B[0]) // TICK_EVERY)
    assert store.n_episodes == summary.episodes == 2
    assert list(np.diff(store.episode_ends, prepend=0)) == [first_success_tick, ticks_b]
    assert summary.successes == 1 and summary.steps == store.n_steps
    for ep, (start, reward_at_end) in enumerate(((STRETCH_A[0], 1.0), (STRETCH_B[0], 0.0))):
        steps, final = store.episode(ep), store.final_obs(ep)
        assert set(steps) == {"state", "image_wrist", *STEP_KEYS}
        n = len(steps["action"])
        ticks = [start + k * TICK_EVERY for k in range(n + 1)]
        for k, i in enumerate(ticks[:-1]):
            np.testing.assert_array_equal(steps["state"][k], expected_state(session, tick_ns(i), True))
            # the frame logged 1 ns after this tick is not seen: the one before it is
            np.testing.assert_array_equal(steps["image_wrist"][k], _frame(2 * ((i - 1) // 2)))
            want = expected_action(session, tick_ns(i), tick_ns(ticks[k + 1]), cfg.pos_scale)
            np.testing.assert_allclose(steps["action"][k], want, atol=1e-6)
            assert steps["t_obs"][k] == tick_ns(i) * 1e-9
        np.testing.assert_array_equal(final["state"], expected_state(session, tick_ns(ticks[-1]), True))
        assert steps["state"].shape[1] == state_dim(len(JOINTS), object_dim=OBJECT_STATE_DIM)
        assert steps["action"].dtype == np.float32 and steps["image_wrist"].dtype == np.uint8
        np.testing.assert_array_equal(steps["policy_action"], steps["action"])
        assert list(steps["reward"]) == [0.0] * (n - 1) + [reward_at_end]
        assert list(steps["terminated"]) == [False] * (n - 1) + [reward_at_end == 1.0]
        assert list(steps["truncated"]) == [False] * (n - 1) + [reward_at_end == 0.0]
        assert not steps["intervened"].any() and (steps["policy_version"] == -1).all()
    a, b = store.episode(0)["action"], store.episode(1)["action"]
    # inside a stretch the target moves vel / control_hz per tick: action = that / pos_scale
    np.testing.assert_allclose(a[1:-1, :3], np.tile(VEL_A / 10 / cfg.pos_scale, (len(a) - 2, 1)), atol=1e-5)
    assert set(a[:, 3]) == {-1.0, 1.0}
    assert np.all(b[:-1, 0] == 1.0) and summary.clipped_actions == np.sum(b[:, 0] == 1.0)
    assert store.attrs["source"]["config"]["cameras"] == CAMERAS
    last_tick_a = STRETCH_A[0] + -(-(STRETCH_A[1] - STRETCH_A[0]) // TICK_EVERY) * TICK_EVERY
    success_tick = STRETCH_A[0] + first_success_tick * TICK_EVERY
    assert summary.skipped_ticks == {"task already succeeded": (last_tick_a - success_tick) // TICK_EVERY}
    assert summary.topic_counts["/joint_states"] == N_ITER


def test_gap_splits_episodes_only_when_longer_than_episode_gap(session: Session, tmp_path: Path) -> None:
    gap_s = (STRETCH_B[0] - STRETCH_A[1]) * ROBOT_DT_NS * 1e-9
    summary = mcap_to_zarr(session.bag, tmp_path / "s.zarr", ConvertConfig(episode_gap_s=gap_s + 0.1))
    store = EpisodeStore(tmp_path / "s.zarr", mode="r")
    # one stretch now: A still ends at success; while success reads true no episode starts, and
    # the next one starts at the first tick that reads it false again and runs to B's end
    assert summary.episodes == 2
    second = store.episode(1)
    first_false = STRETCH_A[0] + -(-(SUCCESS[1] - STRETCH_A[0]) // TICK_EVERY) * TICK_EVERY
    assert second["t_obs"][0] == tick_ns(first_false) * 1e-9
    assert second["truncated"][-1] and not second["terminated"].any()
    assert summary.skipped_ticks["task already succeeded"] == (first_false - SUCCESS[0]) // TICK_EVERY - 1
    assert store.episode(0)["state"].shape[1] == state_dim(len(JOINTS))


def test_missing_and_stale_camera_ticks_end_episodes(tmp_path: Path) -> None:
    """Ticks before the camera's first frame are skipped; a camera pause longer than
    max_obs_age_s ends the episode, and the next one starts when frames are back."""
    on_from, off, back = 50, 80, 110
    s = record_session(tmp_path / "bag", camera_on=lambda i: i >= on_from and not off <= i < back)
    cfg = ConvertConfig(cameras=CAMERAS, max_obs_age_s=0.2)
    summary = mcap_to_zarr(s.bag, tmp_path / "s.zarr", cfg)
    store = EpisodeStore(tmp_path / "s.zarr", mode="r")
    # the frame of iteration on_from is logged 1 ns after its tick: that tick has none yet
    ticks_a = range(STRETCH_A[0], STRETCH_A[1] + 1, TICK_EVERY)
    assert summary.skipped_ticks[f"no {IMAGE} yet"] == sum(i <= on_from for i in ticks_a)
    assert summary.skipped_ticks[f"{IMAGE} older than 0.2 s"] > 0
    assert store.n_episodes == 3
    first, second = store.episode(0), store.episode(1)
    assert first["truncated"][-1] and first["t_obs"][-1] < tick_ns(off + 10) * 1e-9
    assert second["t_obs"][0] > tick_ns(back) * 1e-9 and second["terminated"][-1]


def test_intervened_flag_and_cli(
    session: Session, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli.zarr"
    cli_main(
        ["mcap2zarr", str(session.bag), str(out), "--camera", "wrist", "--intervened", "--pos-scale", "0.05"]
    )
    assert "2 episodes" in capsys.readouterr().out
    steps = EpisodeStore(out, mode="r").episode(0)
    assert steps["intervened"].all()
    np.testing.assert_allclose(
        steps["action"][1:-1, :3], np.tile(VEL_A / 10 / 0.05, (len(steps["action"]) - 2, 1)), atol=1e-5
    )
    with pytest.raises(SystemExit, match=r"error: .*exists"):
        cli_main(["mcap2zarr", str(session.bag), str(out)])
    with pytest.raises(SystemExit, match="known role"):
        cli_main(["mcap2zarr", str(session.bag), str(tmp_path / "x.zarr"), "--topic", "arm=/x"])


def assert_nothing_written(store: Path) -> None:
    assert not store.exists() and not store.with_name(store.name + ".partial").exists()


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (ConvertConfig(cameras={"front": "/front/color/image_raw"}), "no messages on /front/color/image_raw"),
        (ConvertConfig(gripper_command_topic="/joint_states"), "carries sensor_msgs/msg/JointState"),
        (ConvertConfig(base_frame="world"), "in frame 'base', expected 'world'"),
        (ConvertConfig(n_joints=9), "carries 7 joints, the config asks for 9"),
    ],
    ids=["missing-topic", "wrong-type", "wrong-frame", "too-few-joints"],
)
def test_bad_config_for_the_bag_names_the_problem(
    session: Session, tmp_path: Path, cfg: ConvertConfig, message: str
) -> None:
    with pytest.raises(BagError, match=message):
        mcap_to_zarr(session.bag, tmp_path / "s.zarr", cfg)
    assert_nothing_written(tmp_path / "s.zarr")


def _damaged_copy(session: Session, tmp_path: Path, damage: str) -> Path:
    bag = tmp_path / "bag"
    shutil.copytree(session.bag, bag)
    mcap = bag / "bag.mcap"
    data = bytearray(mcap.read_bytes())
    if damage == "truncated":
        mcap.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        mcap.write_bytes(bytes(range(256)) * 40)
    elif damage == "record-length":
        # the first record inside the first chunk: opcode after magic, header record, chunk fields
        header_len = int.from_bytes(data[9:17], "little")
        first_inner = 8 + 9 + header_len + 9 + 40
        data[first_inner + 1 : first_inner + 9] = b"\xff" * 8
        mcap.write_bytes(data)
    elif damage == "no-metadata":
        (bag / "metadata.yaml").unlink()
    return bag


@pytest.mark.parametrize("damage", ["truncated", "garbage", "record-length", "no-metadata"])
def test_damaged_bag_gives_a_clear_error_and_no_store(session: Session, tmp_path: Path, damage: str) -> None:
    bag = _damaged_copy(session, tmp_path, damage)
    with pytest.raises(
        BagError, match="record --recover" if damage == "no-metadata" else re.escape(str(bag))
    ):
        mcap_to_zarr(bag, tmp_path / "s.zarr", ConvertConfig())
    assert_nothing_written(tmp_path / "s.zarr")


def test_existing_store_is_never_touched(session: Session, tmp_path: Path) -> None:
    (tmp_path / "s.zarr").mkdir()
    (tmp_path / "s.zarr" / "keep").write_text("mine")
    with pytest.raises(FileExistsError):
        mcap_to_zarr(session.bag, tmp_path / "s.zarr", ConvertConfig())
    assert (tmp_path / "s.zarr" / "keep").read_text() == "mine"


@pytest.mark.parametrize(
    "kwargs",
    [{"control_hz": 0}, {"pos_scale": -1.0}, {"episode_gap_s": 0.05}, {"cameras": {"wrist cam": "/x"}},
     {"joint_states_topic": "bad name"}, {"n_joints": 0}],
)  # fmt: skip
def test_config_is_validated(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ConvertConfig(**kwargs)
