import multiprocessing as mp
import threading
import time

import numpy as np
import pytest
import torch

from robot_rl.runtime import transport
from robot_rl.runtime.transport import (
    LocalTransport,
    TransitionChunk,
    WeightsId,
    WeightsPublisher,
    load_weights,
    load_weights_with_source,
    published_version,
    run_id,
    save_weights,
)


def _chunk(seq: int, n: int = 2) -> TransitionChunk:
    return TransitionChunk(0, seq, 0, {"reward": np.zeros(n, np.float32)})


def test_weights_newest_wins_and_unchanged_is_none(tmp_path):
    t = LocalTransport(tmp_path / "w.pt", queue_chunks=2, ctx=mp.get_context("spawn"))
    assert t.poll_weights() is None  # nothing published yet
    t.publish_weights(1, {"w": torch.zeros(2)})
    t.flush()  # the file is written in the background
    version, state = t.poll_weights()
    assert version == 1 and torch.equal(state["w"], torch.zeros(2))
    assert t.poll_weights() is None  # unchanged
    t.publish_weights(2, {"w": torch.ones(2)})
    t.publish_weights(3, {"w": torch.full((2,), 3.0)})
    t.flush()
    version, state = t.poll_weights()
    assert version == 3 and state["w"][0].item() == 3.0


def test_weights_file_loads_weights_only(tmp_path):
    save_weights(tmp_path / "p.pt", 7, {"layer.weight": torch.randn(3, 3)})
    blob = torch.load(tmp_path / "p.pt", weights_only=True)
    assert int(blob["version"]) == 7
    assert load_weights(tmp_path / "p.pt")[0] == 7
    assert not list(tmp_path.glob("*.tmp*"))  # no temporary left behind


def test_full_queue_refuses_without_blocking(tmp_path):
    t = LocalTransport(tmp_path / "w.pt", queue_chunks=2, ctx=mp.get_context("spawn"))
    assert t.send(_chunk(0)) and t.send(_chunk(2))
    assert t.send(_chunk(4)) is False
    got = t.receive(max_chunks=10, timeout_s=1.0)
    while len(got) < 2:  # the queue's feeder thread may hand items over one at a time
        got += t.receive(max_chunks=10, timeout_s=1.0)
    assert [c.seq for c in got] == [0, 2]
    assert t.receive(max_chunks=10, timeout_s=0.0) == []


def test_chunk_length_and_end():
    c = TransitionChunk(0, 5, 5, {"reward": np.zeros(3, np.float32)}, final_obs={"state": np.zeros(2)})
    assert len(c) == 3 and c.ends_episode


@pytest.mark.parametrize("version", [0, 5])
def test_older_weights_file_ignored(tmp_path, version):
    t = LocalTransport(tmp_path / "w.pt", queue_chunks=1, ctx=mp.get_context("spawn"))
    t.publish_weights(10, {"w": torch.zeros(1)})
    t.flush()
    assert t.poll_weights()[0] == 10
    t.publish_weights(version, {"w": torch.ones(1)})  # e.g. a stale writer
    t.flush()
    assert t.poll_weights() is None


def test_weights_name_their_learner_and_a_restarted_one_wins_at_once(tmp_path):
    t = LocalTransport(tmp_path / "w.pt", queue_chunks=4)
    first, second = WeightsId("run-a", "one"), WeightsId("run-a", "two")
    t.publish_weights(15, {"w": torch.zeros(1)}, first)
    t.flush()
    assert t.poll_weights()[0] == 15
    assert load_weights_with_source(tmp_path / "w.pt")[2] == first
    t.publish_weights(14, {"w": torch.ones(1)}, first)  # same learner, older version: ignored
    t.flush()
    assert t.poll_weights() is None
    t.publish_weights(3, {"w": torch.full((1,), 3.0)}, second)  # a restarted learner: taken at once
    t.flush()
    version, state = t.poll_weights()
    assert version == 3 and float(state["w"]) == 3.0


def test_run_id_is_made_once_per_run_folder(tmp_path):
    assert run_id(tmp_path) == run_id(tmp_path) != run_id(tmp_path / "other")


# ---------------------------------------------------------------- publishing in the background
class _Disk:
    """write_atomically held at a gate, recording what reached the file, in order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.gate = threading.Event()
        self.written: list[int] = []
        real = transport.write_atomically

        def write(path, data):
            assert self.gate.wait(10), "the test never opened the disk's gate"
            real(path, data)
            self.written.append(load_weights(path)[0])

        monkeypatch.setattr(transport, "write_atomically", write)


def test_publish_returns_while_the_disk_is_stuck_and_the_newest_version_wins(tmp_path, monkeypatch):
    disk = _Disk(monkeypatch)
    delivered: list[int] = []
    publisher = WeightsPublisher(tmp_path / "w.pt", deliver=lambda v, source, payload: delivered.append(v))
    state = {"w": torch.zeros(2)}
    for version in range(1, 6):  # every call returns although no write can finish
        state["w"][0] = version  # the caller goes on changing its tensors
        publisher.publish(version, state, WeightsId("run", "me"))
    assert disk.written == [] and delivered == []  # the first version taken waits for its file
    disk.gate.set()
    publisher.flush()
    # versions that piled up were dropped for the newest; none went out after a newer one
    assert delivered[-1] == 5 and delivered == sorted(set(delivered)) and len(delivered) <= 2
    assert disk.written[-1] == 5 and disk.written == sorted(set(disk.written)) and len(disk.written) <= 2
    assert disk.written[0] == delivered[0]  # the first was on disk before any actor had it
    version, policy, source = load_weights_with_source(tmp_path / "w.pt")
    assert version == 5 and float(policy["w"][0]) == 5.0 and source == WeightsId("run", "me")
    publisher.close()
    assert not list(tmp_path.glob("*.tmp*"))  # written, fsynced and renamed


def test_once_a_file_exists_versions_are_delivered_before_the_disk_and_noted(tmp_path, monkeypatch):
    save_weights(tmp_path / "w.pt", 1, {"w": torch.zeros(1)})
    disk = _Disk(monkeypatch)
    delivered: list[int] = []
    publisher = WeightsPublisher(tmp_path / "w.pt", deliver=lambda v, source, payload: delivered.append(v))
    publisher.publish(2, {"w": torch.ones(1)}, None)
    while not delivered:  # the actors get v2 while its file write is held
        time.sleep(0.01)
    assert delivered == [2] and disk.written == []
    # a learner killed now still continues past v2 when it restarts
    assert load_weights(tmp_path / "w.pt")[0] == 1 and published_version(tmp_path / "w.pt") == 2
    disk.gate.set()
    publisher.close()
    assert disk.written == [2] and published_version(tmp_path / "w.pt") == 2


def test_a_failed_weights_write_reaches_the_next_publish(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    publisher = WeightsPublisher(blocker / "w.pt")  # its folder cannot be made: a file is in the way
    publisher.publish(1, {"w": torch.zeros(1)}, None)
    with pytest.raises(RuntimeError, match=r"w\.pt"):
        publisher.flush()


def _version_seen_by_a_child(t: LocalTransport, out) -> None:
    out.put(t.poll_weights()[0])


def test_local_transport_reaches_a_spawned_actor_without_its_publisher(tmp_path):
    ctx = mp.get_context("spawn")
    t = LocalTransport(tmp_path / "w.pt", queue_chunks=1, ctx=ctx)
    t.publish_weights(1, {"w": torch.zeros(1)})  # the learner's half now holds threads
    t.flush()
    out = ctx.Queue()
    child = ctx.Process(target=_version_seen_by_a_child, args=(t, out))  # pickles the transport
    child.start()
    assert out.get(timeout=60) == 1
    child.join(timeout=30)
    t.close()
