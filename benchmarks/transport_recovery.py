"""Recovery of the gRPC transport from learner restarts and cut links, and whether steps survive.

An actor process records synthetic steps at --hz through TransitionSender into its own
EpisodeStore (the spool) and a GrpcActorTransport; the link runs through a small TCP proxy in
this script. The learner (this process) drains its GrpcLearnerTransport into an Ingest backed by
a replay EpisodeStore. Faults alternate:
- learner restart: the learner's transport closes; an outage later a new
  GrpcLearnerTransport opens on the same port with a fresh Ingest restored from the same replay
  store (start(cursors) from ingest.committed_seq) and publishes new weights. Recovery: from the
  new learner opening its port and publishing to the actor's poll_weights() returning them.
- cut: the proxy cuts the link for an outage, either stalling it (nothing passes, connections stay
  open: a pulled cable) or resetting it (connections closed, new ones refused). Recovery: from
  the link's restoration to the actor's transport reporting it connected again.
Each step's state[0] is its seq; at the end every seq the actor produced is looked for in the
learner's replay store plus the rows of its episode in progress: lost, duplicated, or wrong.

    python -m benchmarks.transport_recovery [--faults 20] [--down-s 2 5] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import queue
import socket
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr

from benchmarks.common import write_results
from robot_rl.config import TransportConfig
from robot_rl.data.episode_store import EpisodeStore
from robot_rl.data.replay import ReplayBuffer
from robot_rl.runtime.ingest import Ingest
from robot_rl.runtime.net.client import GrpcActorTransport
from robot_rl.runtime.net.server import GrpcLearnerTransport
from robot_rl.runtime.sender import TransitionSender

TOKEN = "bench-token"
SPACES = '{"bench": "transport_recovery"}'
ACTOR_ID = 0
HW = 64
CAMERAS = ("wrist", "front")
STATE_DIM = 22
ACTION_DIM = 7


# ---------------------------------------------------------------- the link
class CutProxy:
    """127.0.0.1:port -> the learner's port; cut() stalls or resets the link, restore() reopens it."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.open = threading.Event()
        self.open.set()
        self.mode = ""
        self._closed = False
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._listener: socket.socket | None = self._listen(0)
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept_loop, name="proxy-accept", daemon=True).start()

    @staticmethod
    def _listen(port: int) -> socket.socket:
        sock = socket.create_server(("127.0.0.1", port))
        sock.settimeout(0.05)
        return sock

    def _accept_loop(self) -> None:
        while not self._closed:
            listener = self._listener
            if listener is None:
                time.sleep(0.01)
                continue
            try:
                client, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            self.open.wait()  # a stalled link holds new connections until it is restored
            try:
                upstream = socket.create_connection(self.upstream, timeout=2.0)
            except OSError:  # the learner is down: the actor sees the connection close
                client.close()
                continue
            client.settimeout(None)
            with self._lock:
                self._socks += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                self.open.wait()  # stalled: the bytes wait here, later ones in the kernel's buffers
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                _shut(s)

    def cut(self, mode: str) -> None:
        self.mode = mode
        self.open.clear()
        if mode == "reset":
            listener, self._listener = self._listener, None
            if listener is not None:
                listener.close()
            with self._lock:
                socks, self._socks = self._socks, []
            for s in socks:
                _shut(s)

    def restore(self) -> None:
        if self._listener is None:
            self._listener = self._listen(self.port)
        self.open.set()

    def close(self) -> None:
        self._closed = True
        self.open.set()
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            for s in self._socks:
                _shut(s)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


# ---------------------------------------------------------------- the learner
class BenchLearner:
    """One learner incarnation: replay store + Ingest + GrpcLearnerTransport + a draining thread."""

    def __init__(self, cfg: TransportConfig, run_dir: Path, ingested: list[tuple[float, int]]) -> None:
        self.store = EpisodeStore(run_dir / "replay.zarr", mode="a")
        spec = {"state": ((STATE_DIM,), np.dtype(np.float32))}
        spec |= {f"image_{c}": ((HW, HW, 3), np.dtype(np.uint8)) for c in CAMERAS}
        online = ReplayBuffer(4096, spec, ACTION_DIM, seed=0)  # a ring: old frames make room
        t0 = time.monotonic()
        self.ingest = Ingest(online, None, self.store)
        self.restore_s = time.monotonic() - t0
        self.transport = GrpcLearnerTransport(cfg, run_dir, SPACES, TOKEN)
        self.ingested = ingested  # (time, end seq) of every chunk that brought new steps
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="learner", daemon=True)

    def start(self, version: int, weights: dict[str, torch.Tensor]) -> float:
        """Open the port (the replay store's cursors) and publish; returns when it started."""
        t_up = time.monotonic()
        self.transport.start({a: self.ingest.committed_seq(a) for a in self.ingest.streams})
        self.transport.publish_weights(version, weights)
        self._thread.start()
        return t_up

    def _loop(self) -> None:
        while not self._stop.is_set():
            for chunk in self.transport.receive(64, 0.05):
                try:
                    if self.ingest.add(chunk):
                        self.ingested.append((time.monotonic(), chunk.seq + len(chunk)))
                except RuntimeError as err:  # a gap or a broken episode: what this benchmark looks for
                    self.errors.append(repr(err))

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.transport.close()

    def duplicates_dropped(self) -> int:
        return self.ingest.duplicates_dropped + sum(a["duplicates"] for a in self.transport.actors())


# ---------------------------------------------------------------- the actor (its own process)
def make_frames(n: int) -> dict[str, np.ndarray]:
    """Smooth gradients with a moving blob and sensor noise, HW x HW."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:HW, 0:HW].astype(np.float32) / HW
    base = np.stack([180 * xx + 40, 120 * yy + 60, 90 * (xx + yy) + 30], -1)
    out = {}
    for k, cam in enumerate(CAMERAS):
        frames = np.empty((n, HW, HW, 3), np.uint8)
        for i in range(n):
            cx, cy = 0.5 + 0.3 * np.sin(k + i / 15), 0.5 + 0.3 * np.cos(k + i / 20)
            blob = 80 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.01)[..., None]
            frames[i] = np.clip(base + blob + rng.normal(0, 2, base.shape), 0, 255).astype(np.uint8)
        out[f"image_{cam}"] = frames
    return out


def actor_proc(
    cfg: TransportConfig, store_path: str, hz: float, episode_steps: int, stop: Any, out: Any
) -> None:
    """Record steps at hz until stopped, then hand over the backlog; events go to `out` as they happen."""
    torch.set_num_threads(1)
    frames = make_frames(64)
    transport = GrpcActorTransport(cfg, ACTOR_ID, SPACES, TOKEN)
    store = EpisodeStore(store_path, mode="w")
    sender = TransitionSender(transport, store, ACTOR_ID, next_seq=0, chunk_steps=cfg.chunk_steps)
    rng = np.random.default_rng(1)

    def obs(seq: int) -> dict[str, np.ndarray]:
        state = rng.normal(size=STATE_DIM).astype(np.float32)
        state[0] = seq  # what the learner checks the step's content by
        return {"state": state, **{k: v[seq % len(v)] for k, v in frames.items()}}

    link_up, seq, period = False, 0, 1.0 / hz
    t_next = time.monotonic()
    current = obs(0)
    try:
        while not stop.is_set():
            now = time.monotonic()
            if transport.connected() != link_up:
                link_up = not link_up
                out.put(("link", now, link_up))
            update = transport.poll_weights()
            if update is not None:
                out.put(("weights", now, update[0]))
            transport.raise_if_failed()
            if now >= t_next:
                ends = (seq + 1) % episode_steps == 0
                nxt = obs(seq + 1)
                row = current | {
                    "action": rng.uniform(-1, 1, ACTION_DIM).astype(np.float32),
                    "policy_action": rng.uniform(-1, 1, ACTION_DIM).astype(np.float32),
                    "reward": np.float32(0.0),
                    "terminated": np.bool_(False),
                    "truncated": np.bool_(ends),
                    "intervened": np.bool_(False),
                    "policy_version": np.int64(0),
                    "t_obs": np.float64(time.time()),
                }
                sender.add_step(row, nxt if ends else None)
                seq, current = seq + 1, nxt
                t_next = max(t_next + period, now)  # a late tick is not made up in a burst
            time.sleep(0.001)
        deadline = time.monotonic() + 60
        while (sender.backlog or transport.pending()) and time.monotonic() < deadline:
            transport.raise_if_failed()
            sender.flush()
            time.sleep(0.01)
        out.put(
            (
                "done",
                time.monotonic(),
                {
                    "produced": seq,
                    "actor_store_steps": store.n_steps,
                    "backlog": sender.backlog,
                    "unacked": transport.pending(),
                    "counters": dict(transport.counters),
                },
            )
        )
    except Exception as err:
        out.put(("error", time.monotonic(), repr(err)))
        raise
    finally:
        transport.close(final_beat=False)


# ---------------------------------------------------------------- the run
class Events:
    """The actor's events, collected by a thread as they arrive."""

    def __init__(self, out: Any) -> None:
        self.items: list[tuple[str, float, Any]] = []
        self._out = out
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(queue.Empty):
                self.items.append(self._out.get(timeout=0.1))

    def first(self, kind: str, after: float, value: Any = None) -> float | None:
        for k, t, v in list(self.items):
            if k == kind and t >= after and (value is None or v == value):
                return t
        return None

    def link_up_at(self, t: float) -> bool:
        up = False
        for k, tk, v in list(self.items):
            if k == "link" and tk <= t:
                up = v
        return up

    def done(self) -> dict | None:
        for k, _, v in list(self.items):
            if k == "error":
                raise RuntimeError(f"the actor failed: {v}")
            if k == "done":
                return v
        return None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


def wait_until(pred: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return False


def first_after(ingested: list[tuple[float, int]], t: float) -> float | None:
    return next((ti for ti, _ in list(ingested) if ti >= t), None)


class Rig:
    """The learner, the proxy and the actor process of one run, and the faults done to them."""

    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        cfg = TransportConfig(
            kind="grpc",
            listen="127.0.0.1:0",
            token=TOKEN,
            heartbeat_s=args.heartbeat_s,
            lost_after_s=args.lost_after_s,
            reconnect_max_s=args.reconnect_max_s,
            call_timeout_s=args.call_timeout_s,
        )
        self.run_dir = tmp / "learner"
        self.weights = {"pi.weight": torch.randn(256, 64), "pi.bias": torch.zeros(256)}
        self.version = 1
        self.ingested: list[tuple[float, int]] = []  # (time, end seq) of chunks with new steps
        self.errors: list[str] = []
        self.dropped = 0  # re-sent steps that earlier learners dropped as already held
        self.learner = BenchLearner(cfg, self.run_dir, self.ingested)
        self.learner.start(self.version, self.weights)
        # restarts listen on the same port, as a learner restarted with the same config does
        self.cfg = TransportConfig(**{**asdict(cfg), "listen": f"127.0.0.1:{self.learner.transport.port}"})
        self.proxy = CutProxy(self.learner.transport.port)
        actor_cfg = TransportConfig(**{**asdict(self.cfg), "learner": f"127.0.0.1:{self.proxy.port}"})
        ctx = mp.get_context("spawn")
        self.stop, out = ctx.Event(), ctx.Queue()
        self.actor = ctx.Process(
            target=actor_proc,
            args=(actor_cfg, str(tmp / "actor.zarr"), args.hz, args.episode_steps, self.stop, out),
            daemon=True,
        )
        self.actor.start()
        self.events = Events(out)

    def restart(self, down_s: float) -> dict[str, Any]:
        t_down = time.monotonic()
        self.dropped += self.learner.duplicates_dropped()
        self.learner.close()
        self.errors += self.learner.errors
        self.version += 1
        self.learner = BenchLearner(self.cfg, self.run_dir, self.ingested)  # restores from the store
        time.sleep(max(0.0, t_down + down_s - time.monotonic()))
        t_up = self.learner.start(self.version, self.weights)
        return {
            "kind": "learner restart",
            "t_fault": t_down,
            "t_up": t_up,
            "version": self.version,
            "down_s": t_up - t_down,
            "restore_s": self.learner.restore_s,
        }

    def cut(self, mode: str, down_s: float) -> dict[str, Any]:
        t_fault = time.monotonic()
        self.proxy.cut(mode)
        time.sleep(down_s)
        t_up = time.monotonic()
        self.proxy.restore()
        return {"kind": f"cut ({mode})", "t_fault": t_fault, "t_up": t_up, "down_s": t_up - t_fault}

    def finish(self) -> dict[str, Any]:
        """Stop the actor, let it hand over its backlog, and count the learner's steps."""
        self.stop.set()
        if not wait_until(lambda: self.events.done() is not None, 90):
            raise TimeoutError("the actor did not hand over its backlog within 90 s")
        done = self.events.done()
        assert done is not None
        wait_until(lambda: self.learner.ingest.next_seq(ACTOR_ID) >= done["produced"], 30)
        time.sleep(0.5)
        stream = self.learner.ingest.streams.get(ACTOR_ID)
        in_progress = [(int(r["seq"]), float(r["state"][0])) for r in (stream.rows if stream else [])]
        self.errors += self.learner.errors
        dropped = self.dropped + self.learner.duplicates_dropped()
        self.close()
        counts = count_steps(self.run_dir / "replay.zarr", in_progress, done["produced"])
        return {"steps": counts | {"duplicates_dropped_by_learner": dropped}, "actor": done}

    def close(self) -> None:
        self.stop.set()
        self.actor.join(timeout=30)
        if self.actor.is_alive():
            self.actor.terminate()
        self.events.close()
        self.proxy.close()
        self.learner.close()


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
    if fault["kind"] == "learner restart":
        out["weights_s"] = weights - t_up if weights is not None else nan
        out["recovery_s"] = out["weights_s"]
    else:
        out["recovery_s"] = out["link_up_s"]
    return out


def count_steps(path: Path, in_progress: list[tuple[int, float]], produced: int) -> dict[str, int]:
    """Every seq the actor produced, looked for in the learner's replay store and episode in progress."""
    root = zarr.open_group(str(path), mode="r")
    ends = np.asarray(root["meta"]["episode_ends"][:], np.int64)
    n = int(ends[ends >= 0][-1]) if np.any(ends >= 0) else 0
    seqs = np.asarray(root["data"]["seq"][:n], np.int64) if n else np.zeros(0, np.int64)
    marks = np.asarray(root["data"]["state"][:n, 0], np.float64) if n else np.zeros(0)
    if in_progress:
        seqs = np.concatenate([seqs, [s for s, _ in in_progress]])
        marks = np.concatenate([marks, [m for _, m in in_progress]])
    unique = np.unique(seqs)
    return {
        "produced": produced,
        "in_replay_store": n,
        "in_progress": len(in_progress),
        "lost": produced - int(np.sum(unique < produced)),
        "duplicated": len(seqs) - len(unique),
        "unknown_seq": int(np.sum(unique >= produced)),
        "wrong_content": int(np.sum(marks != seqs)),
    }


def _pct(values: list[float]) -> dict[str, float]:
    a = np.asarray([v for v in values if np.isfinite(v)])
    if not len(a):
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan"), "n": 0}
    p50, p99 = np.percentile(a, [50, 99])
    return {"p50": float(p50), "p99": float(p99), "max": float(a.max()), "n": len(a)}


def summarize(faults: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in dict.fromkeys(f["kind"] for f in faults):
        fs = [f for f in faults if f["kind"] == kind]
        out[kind] = {
            key: _pct([f[key] for f in fs if key in f])
            for key in ("recovery_s", "link_up_s", "data_s", "loss_detected_s", "down_s", "restore_s")
        } | {"not_recovered": sum(not f["recovered"] for f in fs), "n": len(fs)}
    return out


def markdown(r: dict) -> str:
    c = r["config"]
    what = {
        "learner restart": "new learner publishes -> actor's poll_weights() returns its weights",
        "cut (stall)": "link restored -> actor connected",
        "cut (reset)": "link restored -> actor connected",
    }
    rows = []
    for kind, s in r["summary"].items():
        rec, link, data, lost, down = (
            s[k] for k in ("recovery_s", "link_up_s", "data_s", "loss_detected_s", "down_s")
        )
        rows.append(
            f"| {kind} | {s['n']} | {what.get(kind, '')} | {rec['p50']:.2f} / {rec['p99']:.2f} / "
            f"{rec['max']:.2f} | {data['p50']:.2f} / {data['max']:.2f} | {link['p50']:.2f} | "
            f"{lost['p50']:.2f} | {down['p50']:.1f} | {s['not_recovered']} |"
        )
    per_kind = {
        kind: ", ".join(f"{f['down_s']:.1f}->{f['recovery_s']:.2f}" for f in r["faults"] if f["kind"] == kind)
        for kind in r["summary"]
    }
    st = r["steps"]
    restore = (
        r["summary"].get("learner restart", {}).get("restore_s", {"p50": float("nan"), "max": float("nan")})
    )
    return "\n".join(
        [
            "## transport_recovery: learner restarts and cut links, recovery time and step accounting",
            "",
            f"{c['faults']} faults alternating learner restart and link cut (stall and reset in turn) "
            f"while an actor process records steps at {c['hz']:g} Hz (episodes of {c['episode_steps']}, "
            f"2 x {HW}x{HW} RGB + state + STEP_KEYS) through TransitionSender + GrpcActorTransport with "
            "its EpisodeStore as the spool; the learner drains into Ingest and a replay EpisodeStore. "
            f"heartbeat_s={c['heartbeat_s']:g}, lost_after_s={c['lost_after_s']:g}, "
            f"reconnect_max_s={c['reconnect_max_s']:g}, call_timeout_s={c['call_timeout_s']:g}. Each "
            "outage (a cut, or a restarted learner's absence) lasts a time drawn uniformly from "
            f"[{c['down_s'][0]:g}, {c['down_s'][1]:g}] s, so recoveries sample every phase of the "
            "reconnect backoff; a restart lasts longer when closing the old learner and restoring the "
            f"new one's Ingest from the replay store takes longer. {c['gap_s']:g} s of normal running "
            "after each recovery. Stall: nothing "
            "passes, connections stay open (a pulled cable); reset: connections closed and new ones "
            "refused. Times in seconds.",
            "",
            "| fault | n | recovery measured | recovery p50 / p99 / max | first new step ingested p50 / max |"
            " link up p50 | loss detected p50 | down p50 | not recovered |",
            "|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            "Each fault, outage -> recovery (s): "
            + "; ".join(f"{kind}: {faults}" for kind, faults in per_kind.items())
            + ".",
            "",
            f"A restarted learner's Ingest restore from the replay store (it reads every stored episode) "
            f"took p50 {restore['p50']:.2f} s, max {restore['max']:.2f} s; the store held up to "
            f"{st['in_replay_store']:,} steps.",
            "",
            f"Steps: {st['produced']:,} produced; {st['in_replay_store']:,} in the learner's replay store + "
            f"{st['in_progress']} in its episode in progress. **Lost {st['lost']}, duplicated "
            f"{st['duplicated']}**, wrong content {st['wrong_content']}, unknown seq {st['unknown_seq']}; "
            f"re-sent steps the learner dropped as already held: {st['duplicates_dropped_by_learner']:,}. "
            f"Ingest errors: {len(r['ingest_errors'])}.",
            "",
            f"Load average (1 min) at start / end: {r['load_avg_1m'][0]:.1f} / {r['load_avg_1m'][1]:.1f} "
            f"on {os.cpu_count()} cores (other work shares this machine).",
        ]
    )


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
