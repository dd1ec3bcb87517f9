"""`robot-rl fleet`: a learner and sim workers as Ray actors over the gRPC transport.

Config checks run without Ray. The learner's side of a big fleet (16 actor ids) is driven by
lightweight senders (a GrpcActorTransport and a TransitionSender each, as an actor sends) rather
than 16 Ray worker processes, which would need ~6 GB and minutes of a 2-core box to start. The
fleet runs are real: Ray on this machine, the learner and each worker in Ray's processes, and a
worker killed with SIGKILL is restarted by Ray and resumes its spool. Steps are counted by seq.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from test_remote_e2e import ENV, assert_exactly_once, stored_steps, wait_for

from robot_rl.agents.sac import SACConfig
from robot_rl.config import DemoConfig, FleetConfig, SimEnvConfig, TrainConfig, TransportConfig
from robot_rl.data.episode_store import EpisodeStore
from robot_rl.envs.config import RobotEnvConfig
from robot_rl.envs.factory import make_env
from robot_rl.runtime.fleet import check_fleet
from robot_rl.runtime.learner_app import serve
from robot_rl.runtime.net.client import GrpcActorTransport
from robot_rl.runtime.net.codec import spaces_json
from robot_rl.runtime.progress import LearnerDisplay, actor_group_line, id_ranges
from robot_rl.runtime.sender import TransitionSender


def _cfg(run_dir: Path, steps: int = 300, **fleet) -> TrainConfig:
    """A small pick_cube (state) run: tiny nets, few demos, a fast link."""
    transport = TransportConfig(
        kind="grpc", listen="127.0.0.1:0", heartbeat_s=0.25, lost_after_s=1.0, reconnect_max_s=0.5
    )
    return TrainConfig(
        env=SimEnvConfig(),
        agent=SACConfig(hidden_dims=[64, 64], batch_size=32, utd=2),
        demos=DemoConfig(num_episodes=2),
        transport=transport,
        fleet=FleetConfig(**fleet),
        total_env_steps=steps,
        learning_starts=64,
        weights_every_updates=10,
        checkpoint_every_updates=30,
        eval_episodes=0,
        final_eval_episodes=0,
        max_actor_lead_steps=None,  # workers keep acting while the test kills one
        run_dir=str(run_dir),
    )


# ---------------------------------------------------------------- config checks (no Ray)
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"address": "http://head:10001"}, "fleet.address must be local, auto or ray://HOST:PORT"),
        ({"address": "ray://head"}, "fleet.address must be local, auto or ray://HOST:PORT"),
        ({"workers": 0}, "fleet.workers must be >= 1"),
        ({"worker_cpus": -1.0}, "must be >= 0"),
        ({"max_restarts": -2}, "fleet.max_restarts must be >= -1"),
        ({"start_timeout_s": 0.0}, "fleet.start_timeout_s must be > 0"),
    ],
)
def test_bad_fleet_values_are_refused(fields, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        FleetConfig(**fields)


def test_cluster_addresses_are_accepted():
    assert FleetConfig(address="ray://head.lab:10001").address == "ray://head.lab:10001"
    assert FleetConfig(address="auto").address == "auto"


def test_fleet_checks_against_the_rest_of_the_config(tmp_path):
    cfg = _cfg(tmp_path, workers=4)
    check_fleet(cfg)  # 4 workers, max_actors 4: fine
    too_many = replace(cfg, fleet=FleetConfig(workers=5))
    with pytest.raises(ValueError, match=r"fleet.workers=5 is more than .*transport.max_actors=4"):
        check_fleet(too_many)
    cluster = replace(cfg, fleet=FleetConfig(address="ray://head:10001"))
    with pytest.raises(ValueError, match=r"listen on 127.0.0.1:0: set transport.listen=0.0.0.0:PORT"):
        check_fleet(cluster)
    check_fleet(replace(cluster, transport=replace(cfg.transport, listen="0.0.0.0:50051")))
    with pytest.raises(ValueError, match="runs sim workers"):
        check_fleet(replace(cfg, env=RobotEnvConfig()))


def robot_rl(*args: str, timeout_s: float) -> subprocess.CompletedProcess:
    """The robot-rl command, its output captured."""
    cmd = [sys.executable, "-m", "robot_rl.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=ENV)


def test_cli_refuses_more_workers_than_max_actors_before_making_anything(tmp_path):
    run = tmp_path / "run"
    res = robot_rl("fleet", "fleet.workers=6", f"run_dir={run}", timeout_s=120)
    assert res.returncode != 0
    assert "fleet.workers=6 is more than the learner serves" in res.stdout + res.stderr
    assert not run.exists()


def test_cli_refuses_gpus_the_machine_lacks_and_leaves_no_folder(tmp_path):
    pytest.importorskip("ray")
    run = tmp_path / "run"
    res = robot_rl("fleet", "fleet.workers=1", "fleet.worker_gpus=1000", f"run_dir={run}", timeout_s=180)
    assert res.returncode != 0
    assert "the fleet asks for 1000 GPUs" in res.stdout + res.stderr
    assert not run.exists()


# ---------------------------------------------------------------- the learner's display
def _link(actor_id: int, **stats) -> dict:
    base = {"actor_id": actor_id, "host": "node-a", "seen_s_ago": 0.1, "connects": 1, "backpressure": 0}
    return base | {"duplicates": 0, "env_steps": 100, "episodes": 2, "success_last20": 0.5} | stats


def test_many_actors_are_shown_grouped_by_host(tmp_path, capsys):
    assert id_ranges([7, 0, 1, 2, 3, 9, 10]) == "0-3,7,9-10"
    line = actor_group_line("node-a", [_link(0), _link(1, done=True), _link(2, seen_s_ago=9.0)], 3.0)
    assert "3 actors @ node-a (0-2)" in line and "env 300" in line and "mean 0.50" in line
    assert "done 1 (1)" in line and "LOST 1 (2)" in line and "ok 1 (0)" in line

    class Transport:
        def actors(self) -> list[dict]:
            return [_link(i, host="node-a" if i < 5 else "node-b") for i in range(8)]

        def depth(self) -> int:
            return 0

        def take_refusals(self) -> list[str]:
            return []

    LearnerDisplay(_cfg(tmp_path), tmp_path, Transport()).show(force=True)
    out = capsys.readouterr().out
    assert "5 actors @ node-a (0-4)" in out and "3 actors @ node-b (5-7)" in out
    assert "actor 0 @" not in out  # no line per actor


# ---------------------------------------------------------------- pacing several actors
class _Links:
    def __init__(self, next_seqs: list[int], done: tuple[int, ...] = ()) -> None:
        self.trained_through = 0
        self._links = [{"next_seq": n, "done": i in done} for i, n in enumerate(next_seqs)]

    def actors(self) -> list[dict]:
        return self._links


def test_several_actors_wait_while_the_learner_owes_more_than_the_lead():
    from robot_rl.runtime.learner_app import _TrainedThrough

    one = _Links([700])
    _TrainedThrough(one).value = 500
    assert one.trained_through == 500  # one actor: the learner's own figure, as before
    two = _Links([600, 400])  # 1000 steps received, trained through 500: the learner owes 500
    _TrainedThrough(two).value = 500
    assert two.trained_through == 0  # an actor at the mean (500 steps) is 500 ahead: it waits
    _TrainedThrough(two).value = 950  # owes 50: both may go on (lead 200)
    assert 600 - two.trained_through < 200 and 400 - two.trained_through < 200
    finished = _Links([600, 400], done=(0,))  # the running one alone is measured against what is owed
    _TrainedThrough(finished).value = 900
    assert finished.trained_through == 400 - 100


# ---------------------------------------------------------------- 16 actors at one learner
def _episode(actor_id: int, seq: int, n: int, state_dim: int) -> list[dict[str, np.ndarray]]:
    return [
        {
            "state": np.full(state_dim, actor_id + 0.001 * (seq + i), np.float32),
            "action": np.zeros(4, np.float32),
            "policy_action": np.zeros(4, np.float32),
            "reward": np.float32(0.0),
            "terminated": np.bool_(False),
            "truncated": np.bool_(i == n - 1),
            "intervened": np.bool_(False),
            "policy_version": np.int64(1),
            "t_obs": np.float64(seq + i),
        }
        for i in range(n)
    ]


def _send_episodes(transport: GrpcActorTransport, store: EpisodeStore, state_dim: int) -> None:
    """Two 20-step episodes through a TransitionSender, as an actor sends them, until acknowledged."""
    sender = TransitionSender(transport, store, transport.actor_id, 0, chunk_steps=8)
    assert transport.wait_for_weights(60.0)
    for _ in range(2):
        rows = _episode(transport.actor_id, store.n_steps, 20, state_dim)
        for i, row in enumerate(rows):
            final = {"state": row["state"] + 1} if i == len(rows) - 1 else None
            sender.add_step(row, final)
    deadline = time.monotonic() + 60.0
    while (sender.backlog or transport.pending()) and time.monotonic() < deadline:
        sender.flush()
        time.sleep(0.02)


def test_learner_serves_16_actors_and_shows_them_grouped(tmp_path, capsys):
    cfg = replace(
        _cfg(tmp_path / "learner", steps=40),
        demos=DemoConfig(source="none", num_episodes=0),
        learning_starts=10**9,  # acceptance only: no training
        transport=replace(_cfg(tmp_path).transport, max_actors=16),
    )
    env = make_env(cfg.env, seed=0)
    spaces, state_dim = (
        spaces_json(env.observation_space, env.action_space),
        env.observation_space["state"].shape[0],
    )
    env.close()
    port: list[int] = []
    listening = threading.Event()
    learner = threading.Thread(
        target=serve,
        args=(cfg, None, lambda p: (port.append(p), listening.set()), 16),
        name="learner-app",
        daemon=True,
    )
    learner.start()
    assert listening.wait(120)
    link = replace(cfg.transport, learner=f"127.0.0.1:{port[0]}")
    token = (tmp_path / "learner" / "transport_token").read_text().strip()
    transports = [GrpcActorTransport(link, i, spaces, token) for i in range(16)]
    stores = [EpisodeStore(tmp_path / f"actor_{i}.zarr", mode="a") for i in range(16)]
    try:
        threads = [
            threading.Thread(target=_send_episodes, args=(t, s, state_dim))
            for t, s in zip(transports, stores, strict=True)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        transports.append(GrpcActorTransport(link, 16, spaces, token))  # one more than max_actors
        wait_for("the 17th actor to be refused", lambda: transports[16].failure is not None, timeout_s=60)
        assert "max_actors" in transports[16].failure
        for t, s in zip(transports[:16], stores, strict=True):  # the 16 are done: the learner may finish
            t.report({"env_steps": s.n_steps, "episodes": s.n_episodes, "done": True})
        learner.join(timeout=120)
        assert not learner.is_alive()  # it finished: all 16 said done and every step arrived
    finally:
        for t in transports:
            t.close(final_beat=False)
    replay = EpisodeStore(tmp_path / "learner" / "replay.zarr", mode="r")
    steps = replay.steps(0, replay.n_steps)
    for actor_id in range(16):
        mine = steps["seq"][steps["actor_id"] == actor_id]
        np.testing.assert_array_equal(mine, np.arange(stores[actor_id].n_steps))
        assert stores[actor_id].n_steps == 40
    assert "16 actors @ " in capsys.readouterr().out


# ---------------------------------------------------------------- fleets on Ray
@pytest.mark.slow
def test_fleet_from_the_command_line_restarts_a_killed_worker_and_loses_nothing(tmp_path):
    """One real fleet (Ray's start and its workers take most of a minute on a 2-core box): two
    workers from `robot-rl fleet`; worker 0 is SIGKILLed mid-run, Ray restarts it, it resumes its
    spool, and every step of both arrives once, in order."""
    pytest.importorskip("ray")
    run = tmp_path / "run"
    args = [
        "fleet", "fleet.workers=2", "fleet.max_restarts=2", f"run_dir={run}", "total_env_steps=400",
        "demos.num_episodes=2", "agent.hidden_dims=[64,64]", "agent.batch_size=32", "agent.utd=2",
        "learning_starts=64", "eval_episodes=0", "final_eval_episodes=2", "weights_every_updates=10",
        "checkpoint_every_updates=30", "max_actor_lead_steps=null",  # workers act on while one is killed
        "transport.listen=127.0.0.1:0", "transport.heartbeat_s=0.25", "transport.lost_after_s=1.0",
        "transport.reconnect_max_s=0.5",
    ]  # fmt: skip
    cmd = [sys.executable, "-m", "robot_rl.cli", *args]
    log = tmp_path / "fleet.log"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True, env=ENV)
        try:
            spool = run / "workers" / "0" / "actor_0" / "episodes.zarr"
            wait_for("worker 0's first stored episode", lambda: stored_steps(spool) > 0, timeout_s=300)
            worker_file = run / "workers" / "0.json"
            pid = json.loads(worker_file.read_text())["pid"]
            time.sleep(0.3)  # into its next episode, whose first steps went out live
            os.kill(pid, signal.SIGKILL)
            recorded_at_kill = stored_steps(spool)
            assert recorded_at_kill < 400  # killed mid-run, with steps still to take
            proc.wait(timeout=600)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, log.read_text()[-4000:]
    assert json.loads(worker_file.read_text())["pid"] != pid  # a new process, started by Ray
    assert stored_steps(spool) >= max(400, recorded_at_kill)  # it went on from its spool
    for actor_id in range(2):  # every step of both, once, in order
        assert assert_exactly_once(run, run / "workers" / str(actor_id), actor_id) >= 400
    result = json.loads((run / "eval.json").read_text())
    assert result["episodes"] == 2 and (run / "weights" / "policy.pt").exists()
    assert result["env_steps"] == sum(
        stored_steps(run / "workers" / str(i) / f"actor_{i}" / "episodes.zarr") for i in range(2)
    )
    assert (run / ".hydra" / "overrides.yaml").exists()  # robot-rl eval and resume read it
