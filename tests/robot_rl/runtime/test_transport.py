import multiprocessing as mp

import numpy as np
import pytest
import torch

from robot_rl.runtime.transport import (
    LocalTransport,
    TransitionChunk,
    WeightsId,
    load_weights,
    load_weights_with_source,
    run_id,
    save_weights,
)


def _chunk(seq: int, n: int = 2) -> TransitionChunk:
    return TransitionChunk(0, seq, 0, {"reward": np.zeros(n, np.float32)})


def test_weights_newest_wins_and_unchanged_is_none(tmp_path):
    t = LocalTransport(tmp_path / "w.pt", queue_chunks=2, ctx=mp.get_context("spawn"))
    assert t.poll_weights() is None  # nothing published yet
    t.publish_weights(1, {"w": torch.zeros(2)})
    version, state = t.poll_weights()
    assert version == 1 and torch.equal(state["w"], torch.zeros(2))
    assert t.poll_weights() is None  # unchanged
    t.publish_weights(2, {"w": torch.ones(2)})
    t.publish_weights(3, {"w": torch.full((2,), 3.0)})
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
    assert t.poll_weights()[0] == 10
    t.publish_weights(version, {"w": torch.ones(1)})  # e.g. a stale writer
    assert t.poll_weights() is None


def test_weights_name_their_learner_and_a_restarted_one_wins_at_once(tmp_path):
    t = LocalTransport(tmp_path / "w.pt", queue_chunks=4)
    first, second = WeightsId("run-a", "one"), WeightsId("run-a", "two")
    t.publish_weights(15, {"w": torch.zeros(1)}, first)
    assert t.poll_weights()[0] == 15
    assert load_weights_with_source(tmp_path / "w.pt")[2] == first
    t.publish_weights(14, {"w": torch.ones(1)}, first)  # same learner, older version: ignored
    assert t.poll_weights() is None
    t.publish_weights(3, {"w": torch.full((1,), 3.0)}, second)  # a restarted learner: taken at once
    version, state = t.poll_weights()
    assert version == 3 and float(state["w"]) == 3.0


def test_run_id_is_made_once_per_run_folder(tmp_path):
    assert run_id(tmp_path) == run_id(tmp_path) != run_id(tmp_path / "other")
