"""A learner SIGKILLed several times mid-run, with its actor, over gRPC on loopback.

Each kill is counted exactly: the actor is frozen (SIGSTOP) first, so the learner catches up with
the steps it received and idles; two status rows in a row with the same update count then give
the count it holds at the kill. The resumed learner's one-line message gives the count it
restored. Checkpoints here come every CKPT_EVERY updates and never by time, so a kill may lose at
most CKPT_EVERY updates: the bound the learner guarantees once its last checkpoint is on disk.
"""

from __future__ import annotations

import csv
import io
import json
import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from robot_rl.data.episode_store import EpisodeStore
from tests.robot_rl.runtime.test_remote_e2e import (
    actor_args,
    assert_exactly_once,
    finish,
    free_port,
    learner_args,
    start,
    wait_for,
)

CKPT_EVERY = 40
# Long enough that the third kill point (3 x GAP updates past the restored counts, ~500 updates)
# comes well before the actor's last step: a run that ends first has no idle learner to count.
STEPS = 1_000
GAP = 80  # updates made between one kill and the next
# checkpoints by update count only: the bound below is in updates, never in seconds; a short
# actor lead keeps the catch-up of each freeze short
SETTINGS = [f"checkpoint_every_updates={CKPT_EVERY}", "checkpoint_every_s=3600", "max_actor_lead_steps=40"]
RESUMED = re.compile(r"learner resumed: checkpoint at .*? env steps \(updates ([\d,]+),")


def learner_rows(run: Path) -> list[dict[str, str]]:
    """The complete rows of the learner's metrics.csv (a row being written is left out)."""
    path = run / "metrics.csv"
    text = path.read_text() if path.exists() else ""
    text = text[: text.rfind("\n") + 1]
    return [row for row in csv.DictReader(io.StringIO(text)) if row.get("updates")]


def updates_when_idle(run: Path) -> int:
    """The learner's update count once two new status rows in a row show the same count."""
    seen = len(learner_rows(run))
    result: list[int] = []

    def idle() -> bool:
        counts = [int(r["updates"]) for r in learner_rows(run)[seen:]]
        if len(counts) >= 2 and counts[-1] == counts[-2]:
            result.append(counts[-1])
        return bool(result)

    wait_for("the learner to catch up and idle", idle, timeout_s=60)
    return result[0]


def restored_updates(log: Path) -> int:
    found = RESUMED.findall(log.read_text())
    assert found, f"no 'learner resumed: checkpoint' line in {log}:\n{log.read_text()[-2000:]}"
    return int(found[-1].replace(",", ""))


def versions_in_step_order(store: Path, actor_id: int = 0) -> np.ndarray:
    """policy_version of one actor's steps in the order it took them (an actor's own store holds
    only its steps, in order; the replay store tags each with actor_id and seq)."""
    steps = EpisodeStore(store, mode="r")
    rows = steps.steps(0, steps.n_steps)
    if "actor_id" not in rows:
        return rows["policy_version"]
    mine = rows["actor_id"] == actor_id
    return rows["policy_version"][mine][np.argsort(rows["seq"][mine], kind="stable")]


@pytest.mark.slow
def test_learner_killed_three_times_loses_at_most_one_checkpoint_interval_each(tmp_path):
    port, L, A = free_port(), tmp_path / "learner", tmp_path / "actor"
    started: list[subprocess.Popen] = []

    def run(*args: str, log: Path) -> subprocess.Popen:
        started.append(start(*args, log=log))
        return started[-1]

    try:
        _kill_three_times(tmp_path, port, L, A, run)
    finally:  # a failed wait must not leave a frozen actor or a learner behind
        for proc in started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
    # every step reached the replay store exactly once, in order, with the actor's values
    assert assert_exactly_once(L, A) >= STEPS
    # the weights an actor acted on never went back, in its store or in the learner's
    for store in (A / "actor_0" / "episodes.zarr", L / "replay.zarr"):
        versions = versions_in_step_order(store)
        assert versions.min() >= 1 and np.all(np.diff(versions) >= 0), store
    final = json.loads((A / "actor_0" / "result.json").read_text())["policy_version"]
    assert final >= versions_in_step_order(A / "actor_0" / "episodes.zarr").max()


def _kill_three_times(
    tmp_path: Path, port: int, L: Path, A: Path, run: Callable[..., subprocess.Popen]
) -> None:
    """Start the learner and the actor, kill the learner three times (the second time with the
    actor), check each kill's loss, and let both finish."""
    learner = run(*learner_args(L, port, STEPS), *SETTINGS, log=tmp_path / "learner0.log")
    wait_for("the token file", (L / "transport_token").exists)
    actor = run(*actor_args(A, L, port, STEPS, *SETTINGS), log=tmp_path / "actor.log")
    held = 0
    # the second kill takes the actor down too: versions must hold across both kinds of restart
    for k, kill_actor in enumerate((False, True, False), start=1):
        after, seen = held + GAP, len(learner_rows(L))
        wait_for(
            f"{after} updates",
            lambda after=after, seen=seen: any(int(r["updates"]) >= after for r in learner_rows(L)[seen:]),
        )
        actor.send_signal(signal.SIGSTOP)
        held = updates_when_idle(L)
        learner.send_signal(signal.SIGKILL)
        learner.wait(timeout=30)
        if kill_actor:
            actor.send_signal(signal.SIGKILL)
            actor.wait(timeout=30)
            actor = run("actor", "resume=true", f"run_dir={A}", log=tmp_path / "actor.log")
        learner = run("learner", "resume=true", f"run_dir={L}", log=tmp_path / f"learner{k}.log")
        if not kill_actor:
            actor.send_signal(signal.SIGCONT)
        log = tmp_path / f"learner{k}.log"
        wait_for("the resumed learner's message", lambda log=log: RESUMED.search(log.read_text()))
        restored = restored_updates(log)
        assert 0 <= held - restored <= CKPT_EVERY, (k, held, restored)
    finish(actor, tmp_path / "actor.log")
    finish(learner, tmp_path / "learner3.log")
