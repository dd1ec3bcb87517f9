"""Weight broadcast latency: one learner, 4 actor processes, a 5M-parameter policy.

The learner publishes a new version every --interval seconds; each actor process (spawned, so
it shares no GIL with the learner) polls poll_weights() every --poll-ms, like a control loop
reading weights, and records when each version first comes back. Latency is publish -> use:
from the learner calling publish_weights() to the actor holding the loaded state dict
(time.monotonic() is CLOCK_MONOTONIC, one clock for every process on the machine).

Three ways, taking turns version by version in the same run so all see the same load: gRPC as
configured by default (actors on the learner's host read its shared copy, the stream carries
heads), gRPC streaming every version to every actor (what actors on other hosts get;
transport.shared_weights=false), and the peer, the one-machine LocalTransport (the learner
writes the weights file atomically, each actor stat()s it every poll and loads it when it
changes).

    python -m benchmarks.weight_broadcast [--actors 4] [--versions 40] [--interval 1.0] [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
import os
import queue
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import write_results
from robot_rl.config import TransportConfig
from robot_rl.runtime.net.client import GrpcActorTransport
from robot_rl.runtime.net.codec import split_weights_message, weights_from_message, weights_message
from robot_rl.runtime.net.server import GrpcLearnerTransport
from robot_rl.runtime.net.shared_weights import SharedCopy, read_copy, shared_memory_dir
from robot_rl.runtime.transport import (
    LocalTransport,
    WeightsId,
    load_weights,
    policy_snapshot,
    save_weights,
    weights_bytes,
    write_atomically,
)

TOKEN = "bench-token"
SPACES = '{"bench": "weight_broadcast"}'
WIDTHS = (512, 1024, 1024, 1024, 1024, 1024, 256)  # an MLP of 1024-wide layers: 4,986,112 params
MARK = "net.0.weight"  # element [0, 0] carries the version, so an actor can check what it got
KINDS = ("grpc", "grpc_stream", "local")  # published in turn, version by version
GRPC_KINDS = ("grpc", "grpc_stream")


def policy_state(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for i, (n_in, n_out) in enumerate(itertools.pairwise(WIDTHS)):
        state[f"net.{i}.weight"] = torch.randn(n_out, n_in, generator=gen) / n_in**0.5
        state[f"net.{i}.bias"] = torch.zeros(n_out)
    return state


def actor_proc(
    actor_id: int, ports: dict[str, int], local_path: str, poll_s: float, stop: Any, out: Any, first: int
) -> None:
    """Poll both transports every poll_s; report (kind, version, t_use, content ok) per new version."""
    torch.set_num_threads(1)
    transports = {
        kind: GrpcActorTransport(
            TransportConfig(kind="grpc", learner=f"127.0.0.1:{port}", token=TOKEN), actor_id, SPACES, TOKEN
        )
        for kind, port in ports.items()
    }
    transports["local"] = LocalTransport(Path(local_path), queue_chunks=1)
    records: list[tuple[str, int, float, bool]] = []
    ready = False
    try:
        while not stop.is_set():
            for kind, transport in transports.items():
                update = transport.poll_weights()
                if update is not None:
                    now = time.monotonic()
                    version, state = update
                    records.append((kind, version, now, float(state[MARK][0, 0]) == version))
            if not ready and {k for k, v, *_ in records if v >= first} == set(KINDS):
                out.put(("ready", actor_id))
                ready = True
            time.sleep(poll_s)
        counters = {kind: dict(transports[kind].counters) for kind in GRPC_KINDS}
        out.put(("records", actor_id, records, counters))
    finally:
        for kind in GRPC_KINDS:
            transports[kind].close(final_beat=False)


def stage_costs(state: dict[str, torch.Tensor], tmp: Path, reps: int = 7) -> dict[str, float]:
    """Median ms of each step a version goes through, measured alone in this process, interleaved."""
    path = tmp / "stage" / "policy.pt"
    payload = weights_bytes(1, state)
    wire = weights_message(1, WeightsId(), state)
    save_weights(path, 1, state)
    shared, versions = SharedCopy(shared_memory_dir() or tmp), itertools.count(1)
    stages = {
        "policy_snapshot: copy once (learner's training thread, both)": lambda: policy_snapshot(state),
        "weights_bytes: serialise for the file (learner, background, both)": lambda: weights_bytes(1, state),
        "write_atomically: file + fsync (learner, background, both)": lambda: write_atomically(path, payload),
        "weights_message: frame once for every stream (learner, background, gRPC)": lambda: weights_message(
            1, WeightsId(), state
        ),
        # as the actor gets it: a fresh bytes object per version, read in place
        "split_weights_message + weights_from_message (actor, gRPC)": lambda: weights_from_message(
            split_weights_message(bytes(wire))[1]
        ),
        "SharedCopy.write: to shared memory (learner, background, shared copy)": lambda: shared.write(
            next(versions), wire
        ),
        "read_copy + split + weights_from_message (actor, shared copy)": lambda: weights_from_message(
            split_weights_message(read_copy(shared.path))[1]
        ),
        "load_weights from file (actor, file)": lambda: load_weights(path),
    }
    times: dict[str, list[float]] = {name: [] for name in stages}
    for _ in range(reps):
        for name, fn in stages.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    shared.close()
    return {name: 1e3 * float(np.median(t)) for name, t in times.items()}


def run(n_actors: int, n_versions: int, interval: float, poll_ms: float) -> dict:
    torch.set_num_threads(1)
    state = policy_state()
    n_params = sum(v.numel() for v in state.values())
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        learners = {}
        for kind in GRPC_KINDS:  # the second one offers no shared copy: it streams to every actor
            shares = kind == "grpc"
            cfg = TransportConfig(kind="grpc", listen="127.0.0.1:0", token=TOKEN, shared_weights=shares)
            learners[kind] = GrpcLearnerTransport(cfg, Path(tmp) / kind, SPACES, TOKEN)
            learners[kind].start({})
        local_path = Path(tmp) / "local" / "policy.pt"
        local = LocalTransport(local_path, queue_chunks=1, ctx=ctx)
        publishers = {**learners, "local": local}
        n_kinds = len(KINDS)
        kind_of = {v: KINDS[(v - 1) % n_kinds] for v in range(1, n_kinds * (n_versions + 1) + 1)}

        def publish(version: int) -> tuple[float, float]:
            state[MARK][0, 0] = version
            t_call = time.monotonic()
            publishers[kind_of[version]].publish_weights(version, state)
            return t_call, time.monotonic()

        for version in range(1, n_kinds + 1):  # untimed first versions: every actor starts with weights
            publish(version)
        stop, out = ctx.Event(), ctx.Queue()
        ports = {kind: learner.port for kind, learner in learners.items()}
        procs = [
            ctx.Process(
                target=actor_proc,
                args=(i, ports, str(local_path), poll_ms / 1e3, stop, out, 1),
                daemon=True,
            )
            for i in range(n_actors)
        ]
        for p in procs:
            p.start()
        try:
            _wait_ready(out, n_actors, timeout_s=120)
            published: dict[int, tuple[float, float]] = {}
            t_next = time.monotonic() + interval
            for version in range(n_kinds + 1, n_kinds * (n_versions + 1) + 1):
                time.sleep(max(0.0, t_next - time.monotonic()))
                published[version] = publish(version)
                t_next += interval
            time.sleep(max(2.0, 4 * interval))  # stragglers
            stop.set()
            reports = _collect(out, n_actors, timeout_s=60)
        finally:
            stop.set()
            for p in procs:
                p.join(timeout=10)
                if p.is_alive():
                    p.terminate()
            for learner in learners.values():
                learner.close(grace_s=0.1)
        stage_ms = stage_costs(state, Path(tmp))
    return summarize(published, reports, kind_of, n_actors) | {
        "actors": n_actors,
        "versions_per_transport": n_versions,
        "interval_s": interval,
        "poll_ms": poll_ms,
        "params": n_params,
        "payload_mb": n_params * 4 / 1e6,
        "stage_ms": stage_ms,
    }


def _wait_ready(out: Any, n: int, timeout_s: float) -> None:
    ready: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while len(ready) < n:
        try:
            msg = out.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError(
                f"only actors {sorted(ready)} got their first weights in {timeout_s} s"
            ) from None
        if msg[0] == "ready":
            ready.add(msg[1])


def _collect(out: Any, n: int, timeout_s: float) -> dict[int, tuple[list, dict]]:
    reports: dict[int, tuple[list, dict]] = {}
    deadline = time.monotonic() + timeout_s
    while len(reports) < n and time.monotonic() < deadline:
        try:
            msg = out.get(timeout=1.0)
        except queue.Empty:
            continue
        if msg[0] == "records":
            reports[msg[1]] = (msg[2], msg[3])
    if len(reports) < n:
        raise TimeoutError(f"only actors {sorted(reports)} reported")
    return reports


def _pct(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan"), "n": 0}
    a = 1e3 * np.asarray(values)
    return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)), "max": float(a.max())}


def summarize(
    published: dict[int, tuple[float, float]],
    reports: dict[int, tuple[list, dict]],
    kind_of: dict[int, str],
    n_actors: int,
) -> dict:
    use: dict[tuple[int, int], float] = {}
    bad_content = 0
    for actor_id, (records, _) in reports.items():
        for _, version, t_use, ok in records:
            use[(actor_id, version)] = t_use
            bad_content += not ok
    out: dict[str, Any] = {"bad_content": bad_content, "per_transport": {}}
    for kind in KINDS:
        versions = [v for v in published if kind_of[v] == kind]
        pairs, all_actors, missed = [], [], 0
        for v in versions:
            t_call, _ = published[v]
            lat = [use[(a, v)] - t_call for a in range(n_actors) if (a, v) in use]
            missed += n_actors - len(lat)
            pairs += lat
            if len(lat) == n_actors:
                all_actors.append(max(lat))
        out["per_transport"][kind] = {
            "publish_to_use_ms": _pct(pairs),
            "all_actors_ms": _pct(all_actors),
            "publish_call_ms": _pct([published[v][1] - published[v][0] for v in versions]),
            "missed": missed,
            "pairs": len(pairs),
        }
    # paired: each gRPC version against the file version of the same turn, by all-actors time
    for kind in GRPC_KINDS:
        ratios = []
        for v in published:
            w = v + (len(KINDS) - 1 - KINDS.index(kind))  # the turn's file version
            if kind_of[v] == kind and w in published:
                a = [use.get((i, v), np.nan) - published[v][0] for i in range(n_actors)]
                b = [use.get((i, w), np.nan) - published[w][0] for i in range(n_actors)]
                ratios.append(float(np.max(a) / np.max(b)))
        ratios_arr = np.asarray([r for r in ratios if np.isfinite(r)])
        out[f"{kind}_over_local_all_actors"] = {
            "median": float(np.median(ratios_arr)) if len(ratios_arr) else float("nan"),
            "p10": float(np.percentile(ratios_arr, 10)) if len(ratios_arr) else float("nan"),
            "p90": float(np.percentile(ratios_arr, 90)) if len(ratios_arr) else float("nan"),
        }
    out["grpc_counters"] = {a: c for a, (_, c) in reports.items()}
    return out


def markdown(r: dict) -> str:
    names = {
        "grpc": "gRPC, actors on the learner's host (shared copy, the default)",
        "grpc_stream": "gRPC streamed to every actor (as to other hosts; transport.shared_weights=false)",
        "local": "file (LocalTransport)",
    }
    rows = []
    for kind, s in r["per_transport"].items():
        p, a, c = s["publish_to_use_ms"], s["all_actors_ms"], s["publish_call_ms"]
        rows.append(
            f"| {names[kind]} | {p['p50']:.0f} | {p['p99']:.0f} | {p['max']:.0f} | {a['p50']:.0f} | "
            f"{a['p99']:.0f} | {c['p50']:.0f} / {c['p99']:.0f} | "
            f"{s['missed']} of {s['pairs'] + s['missed']} |"
        )
    ratios = [
        f"{names[k].split(' (')[0]} / file: median {q['median']:.2f} (p10 {q['p10']:.2f}, p90 {q['p90']:.2f})"
        for k in GRPC_KINDS
        for q in [r[f"{k}_over_local_all_actors"]]
    ]
    stages = [f"| {name} | {ms:.1f} |" for name, ms in r["stage_ms"].items()]
    return "\n".join(
        [
            "## weight_broadcast: publish -> use latency of a 5M-parameter policy to 4 actor processes",
            "",
            f"{r['params']:,} float32 parameters ({r['payload_mb']:.1f} MB, an MLP of 1024-wide layers); "
            f"{r['actors']} actor processes (spawned), each polling poll_weights() every "
            f"{r['poll_ms']:g} ms; "
            f"a new version every {r['interval_s']:g} s, {r['versions_per_transport']} per transport, the "
            "three transports taking turns version by version. Latency: from the learner calling "
            "publish_weights() to an actor's poll returning the loaded state dict; all actors: the "
            "slowest of the actors, per version. Learner, actors and loopback share the machine's cores.",
            "",
            "| transport | publish->use p50 ms | p99 ms | max ms | all actors p50 ms | all actors p99 ms | "
            "publish call p50 / p99 ms | missed |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            "All-actors time, paired turn by turn (a version of each transport in turn): "
            + "; ".join(ratios)
            + f". Versions whose content did not match their number: {r['bad_content']}.",
            "",
            "Where the time goes: median ms of each step for one version, measured alone in one process "
            "after the run. publish_weights() copies the tensors once on the calling thread and "
            "returns; a background thread frames them once for every actor stream (raw tensor bytes, "
            "each aligned, which the actor reads where they arrived) and, while an actor on the "
            "learner's host reads it, writes that message to the shared copy in /dev/shm before the "
            "streams carry its head; then another thread serialises and writes the weights file (the "
            "newest version wins on both). The actor's gRPC row includes "
            "copying the message into a fresh bytes object, as gRPC hands it over. The actors' "
            "decoding shares the learner's cores on this machine.",
            "",
            "| step | ms |",
            "|---|---|",
            *stages,
            "",
            f"Load average (1 min) at start / end: {r['load_avg_1m'][0]:.1f} / {r['load_avg_1m'][1]:.1f} "
            f"on {os.cpu_count()} cores (other work shares this machine).",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actors", type=int, default=4)
    parser.add_argument("--versions", type=int, default=40, help="versions per transport")
    # a streamed version to 4 actors can take 0.5 s on a loaded 2-core box: turns must not overlap
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between versions")
    parser.add_argument("--poll-ms", type=float, default=1.0)
    parser.add_argument("--quick", action="store_true", help="smoke run: 5 versions per transport")
    args = parser.parse_args()
    if args.quick:
        args.versions = 5
    load_start = os.getloadavg()[0]
    r = run(args.actors, args.versions, args.interval, args.poll_ms)
    r["load_avg_1m"] = [load_start, os.getloadavg()[0]]
    table = markdown(r)
    print(table)
    cmd = f"python -m benchmarks.weight_broadcast {' '.join(sys.argv[1:])}".strip()
    name = "weight_broadcast_quick" if args.quick else "weight_broadcast"
    write_results(name, r, table, command=cmd, section=not args.quick)


if __name__ == "__main__":
    main()
