"""Recovery of the gRPC transport from learner restarts and cut links, and whether steps survive.

An actor process records synthetic steps at --hz through TransitionSender into its own
EpisodeStore (the spool) and a GrpcActorTransport; the link runs through a small TCP proxy in
this script. The learner (this process) drains its GrpcLearnerTransport into an Ingest backed by
a replay EpisodeStore. Faults alternate:
- learner restart: the learner's transport closes; an outage later a new one starts as the
  learner does: its Ingest reads each actor's cursor from the replay store's seq column, the
  GrpcLearnerTransport opens on the same port (start(cursors)) and publishes new weights, and an
  Intake re-reads the store into the buffers, then ingests. Recovery: from the new learner
  starting to the actor's poll_weights() returning its weights; its start-up (to the port
  opening) and the rest (reconnect and weights) are shown apart.
- cut: the proxy cuts the link for an outage, either stalling it (nothing passes, connections stay
  open: a pulled cable) or resetting it (connections closed, new ones refused). Recovery: from
  the link's restoration to the actor's transport reporting it connected again.
Each step's state[0] is its seq; at the end every seq the actor produced is looked for in the
learner's replay store plus the rows of its episode in progress: lost, duplicated, or wrong.
The proxy is benchmarks/cut_proxy.py, the learner and actor benchmarks/recovery_rig.py, the
summary and RESULTS.md section benchmarks/transport_recovery_report.py.

    python -m benchmarks.transport_recovery [--faults 20] [--down-s 2 5] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import write_results
from benchmarks.recovery_rig import Events, Rig, wait_until
from benchmarks.transport_recovery_report import markdown, summarize
from robot_rl.config import TransportConfig


def run(args: argparse.Namespace) -> dict:
    rng = np.random.default_rng(args.seed)
    cut_modes = args.cut_modes.split(",")
    faults: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        rig = Rig(args, Path(tmp))
        try:
            if not wait_until(lambda: rig.events.first("weights", 0.0, 1) and rig.ingested, 120):
                raise TimeoutError("the actor did not connect and send steps within 120 s")
            time.sleep(args.gap_s)
            for i in range(args.faults):
                down_s = float(rng.uniform(*args.down_s))  # a spread of outages: phases of the backoff
                if i % 2 == 0:
                    fault = rig.restart(down_s)
                else:
                    fault = rig.cut(cut_modes[(i // 2) % len(cut_modes)], down_s)
                ok = wait_until(partial(recovered, fault, rig.events, rig.ingested), 60)
                fault |= measure(fault, rig.events, rig.ingested) | {"recovered": ok}
                if fault["kind"] == "learner restart":  # what the new learner did while it started
                    fault["restore_s"] = rig.learner.restore_s
                    fault["accepted_s"] = rig.learner.t_accepted - fault["t_up"]
                faults.append(fault)
                print(
                    f"  fault {i + 1}/{args.faults}: {fault['kind']}, down {fault['down_s']:.1f} s: recovery "
                    f"{fault['recovery_s']:.2f} s, first step ingested after {fault['data_s']:.2f} s",
                    flush=True,
                )
                time.sleep(args.gap_s)
            result = rig.finish()
        finally:
            rig.close()
    c = rig.cfg
    config = {
        "hz": args.hz,
        "episode_steps": args.episode_steps,
        "chunk_steps": c.chunk_steps,
        "heartbeat_s": c.heartbeat_s,
        "lost_after_s": c.lost_after_s,
        "reconnect_max_s": c.reconnect_max_s,
        "call_timeout_s": c.call_timeout_s,
        "down_s": list(args.down_s),
        "gap_s": args.gap_s,
        "faults": args.faults,
        "seed": args.seed,
    }
    summary = summarize(faults)
    return {"config": config, "faults": faults, "summary": summary, **result, "ingest_errors": rig.errors}


def recovered(fault: dict[str, Any], events: Events, ingested: list[tuple[float, int]]) -> bool:
    """The fault's recovery has been seen, and steps flow into the learner again."""
    t_up = fault["t_up"]
    if first_after(ingested, t_up) is None:
        return False
    if fault["kind"] == "learner restart":
        return events.first("weights", t_up, fault["version"]) is not None
    return events.first("link", t_up, True) is not None or events.link_up_at(t_up)


def measure(fault: dict[str, Any], events: Events, ingested: list[tuple[float, int]]) -> dict[str, float]:
    t_up = fault["t_up"]
    nan = float("nan")
    lost = events.first("link", fault["t_fault"], False)
    link = events.first("link", t_up, True)
    if link is None and events.link_up_at(t_up):
        link = t_up  # the link never dropped, or came back before the restoration
    weights = events.first("weights", t_up, fault.get("version"))
    data = first_after(ingested, t_up)
    out = {
        "loss_detected_s": lost - fault["t_fault"] if lost is not None else nan,
        "link_up_s": link - t_up if link is not None else nan,
        "data_s": data - t_up if data is not None else nan,
    }
    if fault["kind"] == "learner restart":  # from its port opening, and from its process starting
        out["weights_s"] = weights - t_up if weights is not None else nan
        out["recovery_s"] = weights - fault["t_start"] if weights is not None else nan
    else:
        out["recovery_s"] = out["link_up_s"]
    return out


def first_after(ingested: list[tuple[float, int]], t: float) -> float | None:
    return next((ti for ti, _ in list(ingested) if ti >= t), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faults", type=int, default=20)
    parser.add_argument("--hz", type=float, default=50.0, help="steps per second the actor records")
    parser.add_argument("--episode-steps", type=int, default=50)
    parser.add_argument(
        "--down-s", type=float, nargs=2, default=(2.0, 5.0), help="outage length range, seconds"
    )
    parser.add_argument("--cut-modes", default="stall,reset", help="taken in turn by the cuts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gap-s", type=float, default=3.0, help="normal running after each recovery")
    parser.add_argument("--heartbeat-s", type=float, default=0.2)
    parser.add_argument("--lost-after-s", type=float, default=1.0)
    parser.add_argument("--reconnect-max-s", type=float, default=TransportConfig.reconnect_max_s)
    parser.add_argument("--call-timeout-s", type=float, default=TransportConfig.call_timeout_s)
    parser.add_argument("--quick", action="store_true", help="smoke run: 4 faults, outages of 1.5-3 s")
    args = parser.parse_args()
    if args.quick:
        args.faults, args.down_s, args.gap_s = 4, (1.5, 3.0), 1.5
    load_start = os.getloadavg()[0]
    r = run(args)
    r["load_avg_1m"] = [load_start, os.getloadavg()[0]]
    table = markdown(r)
    print(table)
    cmd = f"python -m benchmarks.transport_recovery {' '.join(sys.argv[1:])}".strip()
    name = "transport_recovery_quick" if args.quick else "transport_recovery"
    write_results(name, r, table, command=cmd, section=not args.quick)


if __name__ == "__main__":
    main()
