"""ros_latency's analysis and report: one run's raw records -> durations and counts, the runs of
a case pooled into ms percentiles, and the RESULTS.md section (benchmarks/ros_latency.py measures).

Records are matched by header stamp: a frame's capture stamp, a command's publish stamp, which
survive the CDR round trip to within `match`'s tolerance.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmarks.ros_fakes import CAMERA_FPS, CAMERAS, HEIGHT, WIDTH, image_topic


# ---------------------------------------------------------------- analysis
def stats(seconds: Sequence[float] | np.ndarray) -> dict[str, float]:
    """ms: p50, p99, max (and n) of durations given in s."""
    a = 1e3 * np.asarray(seconds, dtype=np.float64)
    if not a.size:
        return {"n": 0, "p50": math.nan, "p99": math.nan, "max": math.nan}
    return {
        "n": int(a.size),
        "p50": float(np.percentile(a, 50)),
        "p99": float(np.percentile(a, 99)),
        "max": float(a.max()),
    }


def match(keys: np.ndarray, queries: np.ndarray, tol: float = 1e-5) -> np.ndarray:
    """Index into keys of each query's equal stamp (to tol s: the CDR round trip), else -1."""
    if keys.size == 0:
        return np.full(queries.shape, -1)
    order = np.argsort(keys)
    k = keys[order]
    left = np.searchsorted(k, queries).clip(1, k.size) - 1  # the neighbours of each query
    right = np.minimum(left + 1, k.size - 1)
    best = np.where(np.abs(queries - k[left]) <= np.abs(queries - k[right]), left, right)
    return np.where(np.abs(k[best] - queries) <= tol, order[best], -1)


def _in(stamps: np.ndarray, windows: Sequence[Sequence[float]]) -> np.ndarray:
    """Which stamps fall in one of the stepping windows (a reset's scripted move does not)."""
    mask = np.zeros(stamps.shape, bool)
    for start, end in windows:
        mask |= (stamps >= start) & (stamps <= end)
    return mask


def _rows(records: Sequence[Sequence[float]], width: int) -> np.ndarray:
    return np.asarray(records, np.float64).reshape(-1, width)


def observation_samples(raw: dict[str, Any]) -> dict[str, Any]:
    """Per camera: lists of durations (s) and counts of frames, from one run."""
    actor, robot = raw["actor"], raw["robot"]
    out: dict[str, Any] = {}
    for cam, rec in robot["cameras"].items():
        topic = image_topic(cam)
        called = _rows(actor["arrivals"].get(topic, []), 2)
        queued = _rows(actor["queued"].get(topic, []), 2)
        sent = _rows(rec["sent"], 3)
        at_queue = match(sent[:, 0], queued[:, 1])  # which frame each queue push was
        at_call = match(queued[:, 1], called[:, 1])
        q, c = at_queue >= 0, at_call >= 0
        out[cam] = {
            "obs_age": actor["obs_age"][cam],
            "delivery": (called[:, 0] - called[:, 1]).tolist(),
            "poll_wait": (sent[:, 1] - sent[:, 0]).tolist(),
            "publish_call": (sent[:, 2] - sent[:, 1]).tolist(),
            "publish_to_queue": (queued[q, 0] - sent[at_queue[q], 1]).tolist(),
            "queue_to_callback": (called[c, 0] - queued[at_call[c], 0]).tolist(),
            "direct_latest": actor["direct"].get(cam, []),
            "captured": rec["captured"],
            "published": len(sent),
            "queued": len(queued),
            "called_back": len(called),
        }
    return out


def command_samples(raw: dict[str, Any], hz: float) -> dict[str, Any]:
    """Durations (s) and counts of the commands sent in the stepping windows of one run."""
    actor, robot = raw["actor"], raw["robot"]
    windows = actor["windows"]
    pubs, calls, queued = (
        _rows(actor["commands"], 3),
        _rows(robot["driver_calls"], 2),
        _rows(robot["arm_queued"], 2),
    )
    pubs, calls, queued = (
        pubs[_in(pubs[:, 0], windows)],
        calls[_in(calls[:, 1], windows)],
        queued[_in(queued[:, 1], windows)],
    )
    at_queue = match(pubs[:, 0], queued[:, 1])
    q = at_queue >= 0
    jitter, actor_jitter = [], []
    for start, end in windows:  # intervals within a window: a reset is no control period
        jitter += np.diff(np.sort(calls[(calls[:, 1] >= start) & (calls[:, 1] <= end), 0])).tolist()
        actor_jitter += np.diff(pubs[(pubs[:, 0] >= start) & (pubs[:, 0] <= end), 0]).tolist()
    counters = robot["arm_counters"]
    return {
        "latency": (calls[:, 0] - calls[:, 1]).tolist(),
        "to_arm_queue": (queued[:, 0] - queued[:, 1]).tolist(),  # publish stamp -> arm node's queue
        "publish_call": (pubs[q, 2] - pubs[q, 1]).tolist(),
        "jitter": np.abs(np.array(jitter) - 1.0 / hz).tolist(),
        "actor_jitter": np.abs(np.array(actor_jitter) - 1.0 / hz).tolist(),
        "published": len(pubs),
        "queued_at_arm": len(queued),
        "reached_driver": len(calls),
        "passed": counters.get("passed", 0),  # whole run, reset moves included
        "clipped": counters.get("clipped", 0),
        "held": counters.get("held", 0),
        "late_ticks": actor["env_counters"]["late_ticks"],
        "safe_stops": actor["timeouts"],
    }


def pool(parts: Sequence[Any]) -> Any:
    """The runs of one case together: durations -> stats over all samples, counts -> sums."""
    first = parts[0]
    if isinstance(first, dict):
        return {key: pool([part[key] for part in parts]) for key in first}
    if isinstance(first, list):
        return stats([x for part in parts for x in part])
    return sum(parts)


# ---------------------------------------------------------------- report
P3 = ("p50", "p99", "max")


def _pp(s: dict[str, float], keys: Sequence[str] = ("p50", "p99")) -> str:
    return " / ".join(f"{s[k]:.1f}" for k in keys) if s["n"] else "-"


def _ratio(z: dict[str, float], i: dict[str, float], q: str) -> str:
    return f"{z[q] / i[q]:.2f}" if z["n"] and i["n"] else "-"


def _observation_lines(r: dict[str, Any]) -> list[str]:
    cases = {c["path"]: c for c in r["cases"] if "observation" in c}
    rows = []
    for path, case in cases.items():
        for cam, o in case["observation"].items():
            cells = [path, cam, _pp(o["obs_age"]), _pp(o["delivery"]), f"{o['poll_wait']['p50']:.1f}"]
            cells += [_pp(o[m]) for m in ("publish_call", "publish_to_queue", "queue_to_callback")]
            cells += [f"{o['captured']} / {o['published']} / {o['queued']} / {o['called_back']}"]
            rows.append("| " + " | ".join([*cells, str(case["command"]["safe_stops"])]) + " |")
    for cam, o in cases.get("in process", {}).get("observation", {}).items():
        rows.append(
            f"| camera.latest() after each step (floor) | {cam} | {_pp(o['direct_latest'])} |" + " |" * 7
        )
    ratios = []
    for cam, z in cases.get("zenoh", {}).get("observation", {}).items():
        i = cases.get("in process", {}).get("observation", {}).get(cam)
        if i is not None:
            metrics = ("obs_age", "delivery", "publish_to_queue")
            ratios.append(
                f"| {cam} | "
                + " | ".join(_ratio(z[m], i[m], q) for m in metrics for q in ("p50", "p99"))
                + " |"
            )
    return [
        "Observation latency, ms (p50 / p99). Age: the env's observation assembly - capture stamp "
        "(info['obs_age_s']; only observations the env accepted, i.e. younger than 0.25 s). Delivery: "
        "the env's image callback starting (its spin thread) - capture stamp. Poll wait: capture -> "
        "the node's 30 Hz timer publishing it. publish(): the node's call (Image + CameraInfo; in "
        "process it includes the subscriber's decode). publish -> queued: until the decoded message "
        "is in the env transport's keep-last queue (depth 5; zenoh: pushed from zenoh's thread). "
        "queued -> callback: until the env's spin thread runs it. Frames: captured by the camera / "
        "published by the node / queued at the env / run by the env's callback. Safe stops: "
        "ObservationTimeouts (a stale topic).",
        "",
        "| path | camera | obs age | delivery | poll wait p50 | publish() | publish -> queued | "
        "queued -> callback | frames captured / published / queued / called back | safe stops |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "zenoh / in process, same camera:",
        "",
        "| camera | age p50 | age p99 | delivery p50 | delivery p99 | publish -> queued p50 | p99 |",
        "|---|---|---|---|---|---|---|",
        *ratios,
    ]


def _command_lines(r: dict[str, Any]) -> list[str]:
    rows, cpu_rows = [], []
    for c in r["cases"]:
        m = c["command"]
        path = f"zenoh, images {c['path']}" if c["cameras"] else c["path"]  # the arm: see run_case
        loads = ", ".join(f"{x:.0f}" for x in c["load_avg_1m_at_runs"])
        rows.append(
            f"| {path} | {c['control_hz']:g} | {c['cameras']} | {_pp(m['latency'], P3)} | "
            f"{_pp(m['to_arm_queue'])} | {_pp(m['jitter'], P3)} | {_pp(m['actor_jitter'], P3)} | "
            f"{m['published']} / {m['queued_at_arm']} / {m['reached_driver']} | {m['passed']} / "
            f"{m['clipped']} / {m['held']} | {m['late_ticks']} / {m['safe_stops']} | {loads} |"
        )
        cpu = ", ".join(f"{k} {v:.2f}" for k, v in c["cpu_cores"].items())
        cpu_rows.append(f"| {c['path']} | {c['control_hz']:g} | {c['cameras']} | {cpu} |")
    return [
        "Command latency (the driver's move_to_pose call - the env's publish stamp; -> arm queue: "
        "until the decoded target_pose is in the arm node's queue, reliable keep-last depth 1) and "
        "control-period jitter (|interval between driver calls - period|; actor: between its publish "
        "stamps), ms, over the stepping windows (reset moves left out). Commands: published by the "
        "env / queued at the arm node / reaching the driver; passed / clipped / held: the arm node's "
        "counters over the whole run (reset moves included). Late ticks / safe stops: the env's. "
        "Load: the 1-min load average at the start of each run.",
        "",
        "| path | control Hz | cameras | latency p50 / p99 / max | -> arm queue | driver jitter "
        "p50 / p99 / max | actor jitter p50 / p99 / max | commands | passed / clipped / held | "
        "late ticks / safe stops | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Cores each process kept busy (CPU s per wall s, all its threads) while stepping (the env's "
        "process) or serving (the others):",
        "",
        "| path | control Hz | cameras | cores |",
        "|---|---|---|---|",
        *cpu_rows,
    ]


def markdown(r: dict[str, Any], repeats: int, episode_steps: int) -> str:
    """The RESULTS.md section; repeats: runs per case, episode_steps: steps between resets."""
    load, failed = r["load_avg_1m"], len(r["failed_runs"])
    intro = (
        f"Robot side: the twin's ArmNode (SimArm, pick_cube, 500 Hz physics) and {len(CAMERAS)} synthetic "
        f"cameras, {WIDTH}x{HEIGHT} rgb8 ({r['payload_mb']:.2f} MB per Image), {CAMERA_FPS:g} fps (a 30 fps "
        "camera whose clock runs 0.33% slow, so every poll phase occurs), each frame taken from a pool "
        "of pre-made noise images and stamped time.time() at 'capture' (a real camera's exposure and "
        "sensor -> host transfer come on top). Each camera behind a CameraNode polling at 30 Hz; every "
        "node on its own transport and spin thread, as `robot-rl bringup` runs them. Actor: RobotEnv "
        f"(image_size [{HEIGHT}, {WIDTH}], privileged=false, no success topic, reset_scene off, "
        "max_obs_age_s 0.25) stepping slow sine actions. *zenoh*: the arm node in one process and the "
        "two camera nodes in another (`--serve`), loopback TCP. *in process*, with cameras: the cameras "
        "and their nodes in the env's process on an InprocBus (CDR encode/decode included), the arm "
        "still over zenoh, so only the images' hand-over differs; without cameras: the arm node and "
        f"the env on one InprocBus. {r['seconds_per_case']:g} s per case, in {repeats} runs ordered ABBA "
        "between the paths (a trend in the machine's load hits both alike); observation runs reset "
        f"every {episode_steps} steps so the env's tick phase is redrawn. Loopback on one machine: "
        "every clock is the same time.time()."
    )
    codec_line = ", ".join(f"{k} {v:.2f}" for k, v in r["codec_ms"].items())
    return "\n".join(
        [
            "## ros_latency: camera -> observation and actor -> arm driver, zenoh vs in-process",
            "",
            intro,
            "",
            *_observation_lines(r),
            "",
            *_command_lines(r),
            "",
            f"One 640x480 rgb8 frame through the codec, alone on one thread, median ms: {codec_line}.",
            "",
            f"Load average (1 min) at start / end: {load[0]:.1f} / {load[1]:.1f} on {os.cpu_count()} cores "
            "(other work shares this machine: its figures include waiting for a core)."
            + (
                f" Runs retried (a robot-side process did not stop; its log is in the JSON): {failed}."
                if failed
                else ""
            ),
        ]
    )
