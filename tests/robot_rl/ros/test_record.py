"""Recorder: every message and type round-trips through a rosbag2 MCAP bag, the bag is a valid
rosbag2 directory, bad topics are refused at start, and a killed recording recovers up to its
last flush (in-process on truncated copies, and a real SIGKILL of `robot-rl record` over zenoh)."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from rosbags.rosbag2 import Reader

from robot_rl.ros import codec, messages
from robot_rl.ros.inproc import InprocBus, InprocTransport
from robot_rl.ros.messages import CameraIntrinsics
from robot_rl.ros.record import Recorder, parse_topic, recover_bag
from robot_rl.ros.zenoh_backend import ZenohConfig, ZenohTransport

REPO = Path(__file__).resolve().parents[3]
T0_NS = 1_700_000_000_000_000_000
MAGIC = b"\x89MCAP0\r\n"


class FakeClock:
    def __init__(self) -> None:
        self.ns = T0_NS

    def __call__(self) -> int:
        return self.ns


def sample_messages(i: int) -> dict[tuple[str, str], object]:
    """One message of every type the robot stack publishes, varied by i."""
    stamp = 100.0 + i * 0.01
    intrinsics = CameraIntrinsics(8, 6, 5.0 + i, 5.0, 4.0, 3.0, "plumb_bob", (0.1, 0.0, 0.0, 0.0, 0.0))
    return {
        ("/joint_states", codec.JOINT_STATE): messages.joint_state_msg(
            ["j1", "j2"], [i, -i], [0.5, 0.25], stamp
        ),
        ("/current_pose", codec.POSE_STAMPED): messages.pose_stamped_msg(
            [i, 0, 1], [1, 0, 0, 0], stamp, "base"
        ),
        ("/gripper/command", codec.FLOAT64): messages.float64_msg(i / 10),
        ("/task/success", codec.BOOL): messages.bool_msg(i % 2 == 0),
        ("/wrist/color/image_raw", codec.IMAGE): messages.image_msg(
            np.full((6, 8, 3), i, np.uint8), stamp, "wrist"
        ),
        ("/wrist/color/camera_info", codec.CAMERA_INFO): messages.camera_info_msg(intrinsics, stamp, "wrist"),
        ("/target_twist", codec.TWIST_STAMPED): messages.twist_stamped_msg(
            [i, 0, 0], [0, 0, i], stamp, "base"
        ),
        ("/ft", codec.WRENCH_STAMPED): messages.wrench_stamped_msg([0, 0, i], [0, 0, 0], stamp, "tool"),
    }


def record_samples(path: Path, n: int, flush_each: int = 0) -> tuple[Recorder, list[tuple[int, int]]]:
    """Record n rounds of sample_messages (one ms apart on a fake clock) into a bag at path;
    with flush_each, flush after every flush_each rounds and note (file size, flushed messages)."""
    bus, clock = InprocBus(), FakeClock()
    node, recorder_node = InprocTransport(bus), InprocTransport(bus)
    recorder = Recorder(recorder_node, path, list(sample_messages(0)), clock=clock)
    publishers = {key: node.create_publisher(*key) for key in sample_messages(0)}
    flushes = []
    for i in range(n):
        for key, msg in sample_messages(i).items():
            clock.ns += 1_000_000
            publishers[key].publish(msg)
            recorder_node.spin_once(0.0)
        if flush_each and (i + 1) % flush_each == 0:
            recorder.flush()
            flushes.append(
                (path.joinpath(f"{path.name}.mcap").stat().st_size, sum(recorder.on_disk.values()))
            )
    return recorder, flushes


def read_bag(path: Path) -> list[tuple[str, str, int, bytes]]:
    with Reader(path) as reader:
        return [(c.topic, c.msgtype, t, bytes(raw)) for c, t, raw in reader.messages()]


def test_every_message_and_type_round_trips(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    recorder, _ = record_samples(bag, 5)
    summary = recorder.close()
    rows = read_bag(bag)
    expected = [(key, msg) for i in range(5) for key, msg in sample_messages(i).items()]
    assert len(rows) == len(expected)
    store = codec.get_codec()
    for n, (row, ((want_topic, want_type), msg)) in enumerate(zip(rows, expected, strict=True)):
        topic, msg_type, log_ns, raw = row
        assert (topic, msg_type) == (want_topic, want_type)
        assert log_ns == T0_NS + (n + 1) * 1_000_000  # receive time from the recorder's clock
        assert raw == store.encode(msg, msg_type)  # the CDR bytes that were published
        assert store.encode(store.decode(raw, msg_type), msg_type) == raw
    assert summary.messages == {topic: 5 for topic, _ in sample_messages(0)}
    with Reader(bag) as reader:
        assert {(c.topic, c.msgtype, c.msgcount) for c in reader.connections} == {
            (topic, msg_type, 5) for topic, msg_type in sample_messages(0)
        }


def test_bag_is_a_rosbag2_mcap_directory(tmp_path: Path) -> None:
    bag = tmp_path / "demo"
    recorder, _ = record_samples(bag, 3)
    recorder.close()
    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["storage_identifier"] == "mcap"
    assert info["version"] == 8  # QoS as a YAML string: Humble's rosbag2 parses it
    assert info["message_count"] == 3 * len(sample_messages(0))
    data = (bag / info["relative_file_paths"][0]).read_bytes()
    assert data.startswith(MAGIC) and data.endswith(MAGIC)
    assert sorted(p.name for p in bag.iterdir()) == ["demo.mcap", "metadata.yaml"]


def test_bad_topics_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    transport = InprocTransport()
    with pytest.raises(ValueError, match="foo_msgs/msg/Bar"):
        Recorder(transport, tmp_path / "a", [("/x", "foo_msgs/msg/Bar")])
    with pytest.raises(ValueError, match="listed twice"):
        Recorder(transport, tmp_path / "a", [("x", codec.BOOL), ("/x", codec.BOOL)])
    with pytest.raises(ValueError, match="nothing to record"):
        Recorder(transport, tmp_path / "a", [])
    assert not (tmp_path / "a").exists()
    (tmp_path / "taken").mkdir()
    with pytest.raises(FileExistsError):
        Recorder(transport, tmp_path / "taken", [("/x", codec.BOOL)])


def test_topic_specs_name_their_type() -> None:
    assert parse_topic("gripper/joint_states") == ("/gripper/joint_states", codec.JOINT_STATE)
    assert parse_topic("/gripper/command") == ("/gripper/command", codec.FLOAT64)
    assert parse_topic("/front/color/image_raw") == ("/front/color/image_raw", codec.IMAGE)
    assert parse_topic("/odom:nav_msgs/Odometry") == ("/odom", "nav_msgs/msg/Odometry")
    with pytest.raises(ValueError, match="/odom:pkg/msg/Type"):
        parse_topic("odom")


def test_garbled_payloads_are_counted_not_recorded(tmp_path: Path) -> None:
    bus = InprocBus()
    transport = InprocTransport(bus)
    recorder = Recorder(transport, tmp_path / "bag", [("/gripper/command", codec.FLOAT64)])
    publisher = InprocTransport(bus).create_publisher("/gripper/command", codec.FLOAT64)
    publisher.publish(messages.float64_msg(1.0))
    bus.deliver("/gripper/command", codec.FLOAT64, b"\x00\x01")
    publisher.publish(messages.float64_msg(2.0))
    transport.spin_once(0.0)
    summary = recorder.close()
    assert summary.messages == {"/gripper/command": 2}
    assert summary.dropped_garbled == {"/gripper/command": 1}
    values = [codec.get_codec().decode(raw, t).data for _, t, _, raw in read_bag(tmp_path / "bag")]
    assert values == [1.0, 2.0]


def test_close_writes_what_is_queued(tmp_path: Path) -> None:
    bus = InprocBus()
    transport = InprocTransport(bus)
    recorder = Recorder(transport, tmp_path / "bag", [("/gripper/command", codec.FLOAT64)])
    publisher = InprocTransport(bus).create_publisher("/gripper/command", codec.FLOAT64)
    for i in range(50):  # never spun: all queued when close() is called
        publisher.publish(messages.float64_msg(i))
    assert recorder.close().messages == {"/gripper/command": 50}
    assert len(read_bag(tmp_path / "bag")) == 50


def test_killed_recording_recovers_every_flushed_message(tmp_path: Path) -> None:
    """A file cut where a SIGKILL leaves it (at a flush, or inside the chunk after it, or in the
    summary) recovers exactly the messages flushed before the cut, with their bytes and times."""
    full = tmp_path / "full"
    recorder, flushes = record_samples(full, 12, flush_each=3)
    recorder.close()
    everything = read_bag(full)
    data = (full / "full.mcap").read_bytes()
    after_flush = [size + offset for (size, _), offset in zip(flushes, (0, 40, 100, 1), strict=True)]
    cuts = [30, *after_flush, len(data) - 1]
    for cut in cuts:
        bag = tmp_path / f"cut{cut}"
        bag.mkdir()
        (bag / f"{bag.name}.mcap").write_bytes(data[:cut])
        flushed = max((n for size, n in flushes if size <= cut), default=0)
        if flushed == 0:
            with pytest.raises(ValueError, match="no whole chunk"):
                recover_bag(bag)
            continue
        summary = recover_bag(bag)
        assert sum(summary.messages.values()) == flushed
        assert read_bag(bag) == everything[:flushed]
        assert sorted(p.name for p in bag.iterdir()) == [f"{bag.name}.mcap", "metadata.yaml"]
    with pytest.raises(ValueError, match="nothing to recover"):
        recover_bag(full)


# --- the CLI over zenoh, in a subprocess ------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lines(stream: object) -> tuple[queue.Queue[str], threading.Thread]:
    """The lines of a child's output as they come, and the thread reading them (ends at EOF)."""
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in stream], daemon=True)  # type: ignore[attr-defined]
    reader.start()
    return lines, reader


def _wait_for_flushed(lines: queue.Queue[str], at_least: int, timeout_s: float) -> int:
    """The child's flushed count from its progress lines, once it is at least at_least."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        if "| flushed " in line and int(line.rsplit(" ", 1)[1]) >= at_least:
            return int(line.rsplit(" ", 1)[1])
    raise AssertionError(f"the recorder did not flush {at_least} messages within {timeout_s} s")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_cli_recording_survives_its_end(tmp_path: Path, sig: signal.Signals) -> None:
    """SIGINT: the CLI closes a complete bag with every message it received. SIGKILL: the bag
    recovers with at least every message the recorder had reported flushed; never a gap."""
    port, bag = _free_port(), tmp_path / "bag"
    config = ZenohConfig(listen=(f"tcp/127.0.0.1:{port}",), connect=(), node_name="counter")
    with ZenohTransport(config) as node:
        publisher = node.create_publisher("/count", codec.FLOAT64)
        child = subprocess.Popen(
            [sys.executable, "-m", "robot_rl.cli", "record", "-o", str(bag), "--topics",
             "/count:std_msgs/Float64", "--connect", f"tcp/127.0.0.1:{port}", "--listen",
             "tcp/127.0.0.1:0", "--flush-every-s", "0.2", "--progress-every-s", "0.2"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip
        try:
            lines, reader = _lines(child.stdout)
            stop = threading.Event()

            def publish() -> None:
                i = 0
                while not stop.is_set():
                    publisher.publish(messages.float64_msg(i))
                    i += 1
                    time.sleep(0.002)

            threading.Thread(target=publish, daemon=True).start()
            flushed = _wait_for_flushed(lines, 100, timeout_s=15.0)
            child.send_signal(sig)
            assert child.wait(timeout=10) == (0 if sig == signal.SIGINT else -signal.SIGKILL)
            stop.set()
            reader.join(timeout=5)
        finally:
            child.kill()
    if sig == signal.SIGKILL:
        assert not (bag / "metadata.yaml").exists()
        recover_bag(bag)
    values = np.array([codec.get_codec().decode(raw, t).data for _, t, _, raw in read_bag(bag)])
    assert len(values) >= flushed
    assert np.all(np.diff(values) == 1)  # none lost or reordered after the first one recorded
    if sig == signal.SIGINT:
        final = "".join(lines.queue)
        assert f"bag {bag}: {len(values)} messages" in final


def test_cli_recover_and_bad_input(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    recorder, _ = record_samples(bag, 2, flush_each=1)
    shutil.copy(bag / "bag.mcap", tmp_path / "killed.mcap")
    recorder.close()
    killed = tmp_path / "killed"
    killed.mkdir()
    shutil.move(tmp_path / "killed.mcap", killed / "killed.mcap")
    run = [sys.executable, "-m", "robot_rl.cli", "record"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([*run, "--recover", str(killed)], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert read_bag(killed) == read_bag(bag)
    bad_args = [*run, "-o", str(tmp_path / "x"), "--topics", "odom"]
    bad = subprocess.run(bad_args, cwd=REPO, env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "odom:pkg/msg/Type" in bad.stderr
    assert not (tmp_path / "x").exists()
