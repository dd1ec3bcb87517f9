"""transport_recovery's report: the faults' recovery times summarised per kind, and the
RESULTS.md section (benchmarks/transport_recovery.py measures)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from benchmarks.recovery_rig import HW


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
            for key in (
                *("recovery_s", "link_up_s", "data_s", "loss_detected_s", "down_s", "restore_s"),
                *("startup_s", "weights_s", "accepted_s"),
            )
        } | {"not_recovered": sum(not f["recovered"] for f in fs), "n": len(fs)}
    return out


def markdown(r: dict) -> str:
    c = r["config"]
    what = {
        "learner restart": "new learner starts -> actor's poll_weights() returns its weights",
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
    return "\n".join(
        [
            "## transport_recovery: learner restarts and cut links, recovery time and step accounting",
            "",
            f"{c['faults']} faults alternating learner restart and link cut (stall and reset in turn) "
            f"while an actor process records steps at {c['hz']:g} Hz (episodes of {c['episode_steps']}, "
            f"2 x {HW}x{HW} RGB + state + STEP_KEYS) through TransitionSender + GrpcActorTransport with "
            "its EpisodeStore as the spool; the learner's Intake drains it into Ingest and a replay "
            "EpisodeStore. "
            f"heartbeat_s={c['heartbeat_s']:g}, lost_after_s={c['lost_after_s']:g}, "
            f"reconnect_max_s={c['reconnect_max_s']:g}, call_timeout_s={c['call_timeout_s']:g}. Each "
            "outage (a cut, or a restarted learner's absence) lasts a time drawn uniformly from "
            f"[{c['down_s'][0]:g}, {c['down_s'][1]:g}] s, so recoveries sample every phase of the "
            "reconnect backoff; a restart's outage runs from the old learner closing to the new one "
            f"starting. {c['gap_s']:g} s of normal running "
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
            *_restart_table(r["summary"].get("learner restart"), st["in_replay_store"]),
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


def _restart_table(s: dict[str, Any] | None, stored: int) -> list[str]:
    """A restart split: the learner's own start-up, then what the transport and the actor take."""
    if s is None:
        return []
    up, w, acc, rest, data = (s[k] for k in ("startup_s", "weights_s", "accepted_s", "restore_s", "data_s"))
    return [
        "A learner restart, split: the new learner's own start-up (replay store cursors from its seq "
        "column, the port open), then from the port opening: the actor holding the new weights "
        "(reconnect and weights stream), the first step the learner accepted, its re-read of the "
        f"whole replay store into the buffers (up to {stored:,} steps, after the port opened), and "
        "the first new step ingested (after the re-read).",
        "",
        "| learner start-up p50 / max | port open -> new weights at the actor p50 / p99 / max | "
        "-> first step accepted p50 / max | store re-read p50 / max | -> first new step ingested p50 / max |",
        "|---|---|---|---|---|",
        f"| {up['p50']:.2f} / {up['max']:.2f} | {w['p50']:.2f} / {w['p99']:.2f} / {w['max']:.2f} | "
        f"{acc['p50']:.2f} / {acc['max']:.2f} | {rest['p50']:.2f} / {rest['max']:.2f} | "
        f"{data['p50']:.2f} / {data['max']:.2f} |",
        "",
    ]
