"""Teleop latency on the twin: a SpaceMouse HID report -> the arm driver's command.

The device is the real SpaceMouse driver (drivers/teleop/spacemouse.py) reading a stand-in for
hidapi that streams input reports at HID_RATE_HZ (125 Hz: the 8 ms interrupt interval at which
a SpaceMouse reports while it is deflected; at rest it sends one zero report, then none). Each
trial deflects it full scale along raw y (the person's +x or -x, towards the middle of the
workspace, so the arm never meets its edge) at a random moment, holds PRESS_S, releases and
rests. Latency = the time the driver (the twin's SimArm.move_to_pose, behind the arm node's
safety filter) receives the first target moved the person's way - the time the first deflected
report arrived.

In between, as `robot-rl train env=robot_twin env.in_process_twin=true` runs it: the
InterventionWrapper over RobotEnv at CONTROL_HZ, target_pose over the in-process bus to the
twin's arm node (robot_rl/ros/local_twin.py), the safety filter, the driver. Two device paths:
    local   teleop=spacemouse: the actor polls the device once per control tick
    node    teleop=ros: a teleop node polls it at 50 Hz and publishes it over zenoh on loopback,
            RosTeleop reads it (a device on another machine, here on the same one)
The actor polls once per control period, so a report waits up to a period for its tick (and on
the node path up to a node period for the node's poll first): those waits, not the transports,
set most of the figure.

robot_rl is not edited: the driver's calls are timed by wrapping the twin arm's move_to_pose.

    python -m benchmarks.teleop_latency [--seconds 30] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections import deque
from types import ModuleType
from typing import Any

import numpy as np

from benchmarks.common import free_port, write_results
from drivers.teleop.spacemouse import SpaceMouse, SpaceMouseConfig
from robot_rl.envs.robot_env import RobotEnv, RobotEnvConfig
from robot_rl.hil.intervention import InterventionWrapper
from robot_rl.ros.bringup import SpinThreads
from robot_rl.ros.connect import RosConfig, open_transport
from robot_rl.ros.local_twin import LocalTwin
from robot_rl.ros.nodes.teleop_node import TeleopNode, TeleopNodeParams
from robot_rl.ros.teleop_topics import RosTeleop, RosTeleopConfig
from sim.task_spec import POS_SCALE, WORKSPACE_HIGH, WORKSPACE_LOW

HID_RATE_HZ = 125.0
FULL_SCALE = 350  # counts: SpaceMouseConfig.full_scale
CONTROL_HZ = 10.0
NODE_RATE_HZ = 50.0  # the teleop node's default
PRESS_S, REST_S = 0.25, 0.35  # a press spans >= 2 control ticks; the rest jitters by a period


class SyntheticHidDevice:
    """hidapi's device, as the SpaceMouse driver uses it: reports queue as the kernel's would."""

    def __init__(self) -> None:
        self.reports: deque[list[int]] = deque(maxlen=64)

    def open_path(self, path: bytes) -> None: ...

    def set_nonblocking(self, flag: int) -> None: ...

    def read(self, size: int) -> list[int]:
        try:
            return self.reports.popleft()
        except IndexError:
            return []

    def close(self) -> None: ...


def hid_module(device: SyntheticHidDevice) -> ModuleType:
    """A stand-in for the `hid` module (pip hidapi) that opens `device`."""
    module = ModuleType("hid")
    module.device = lambda: device  # type: ignore[attr-defined]
    module.enumerate = lambda *_: [{"path": b"synthetic"}]  # type: ignore[attr-defined]
    return module


def report(y: int) -> list[int]:
    """Report 1 with all six axes (newer models), y deflected."""
    axes = (0, y, 0, 0, 0, 0)
    return [1, *b"".join(int(a).to_bytes(2, "little", signed=True) for a in axes)]


class ReportStream:
    """Streams reports of the current deflection at HID_RATE_HZ while deflected (and one zero
    report on release); logs (time, sign) of each press's first report."""

    def __init__(self, device: SyntheticHidDevice) -> None:
        self.device, self.deflection = device, 0
        self.onsets: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hid", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        last, due = 0, time.monotonic()
        while not self._stop.is_set():
            due += 1.0 / HID_RATE_HZ
            self._stop.wait(max(0.0, due - time.monotonic()))
            y = self.deflection
            if y != 0 or last != 0:
                self.device.reports.append(report(y))
                if y != 0 and last == 0:
                    self.onsets.append((time.time(), 1 if y > 0 else -1))
            last = y

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)


def person(stream: ReportStream, stop: threading.Event, seed: int, calls: list[tuple[float, float]]) -> None:
    """Presses at random moments, towards the workspace's middle in x (so no press meets its
    edge); a press begun is finished."""
    rng, middle = np.random.default_rng(seed), (WORKSPACE_LOW[0] + WORKSPACE_HIGH[0]) / 2
    while not stop.wait(REST_S + rng.uniform(0.0, 1.0 / CONTROL_HZ)):
        sign = 1 if not calls or calls[-1][1] < middle else -1
        stream.deflection = sign * FULL_SCALE  # raw y drives the person's x (SpaceMouseConfig.axes)
        time.sleep(PRESS_S)
        stream.deflection = 0


def time_driver(twin: LocalTwin) -> list[tuple[float, float]]:
    """(time, target x) of each move_to_pose reaching the twin's arm, from now on."""
    arm, calls = twin.scene.arm, []
    inner = arm.move_to_pose

    def timed(command: Any) -> None:
        calls.append((time.time(), float(command.position[0])))
        inner(command)

    arm.move_to_pose = timed  # the arm node looks the method up on each command
    return calls


def latencies(onsets: list[tuple[float, int]], calls: list[tuple[float, float]]) -> tuple[list[float], int]:
    """Per press: its first report -> the first driver command moved its way (s); and the misses."""
    found, missed = [], 0
    times = np.array([t for t, _ in calls])
    steps = np.diff([x for _, x in calls], prepend=calls[0][1] if calls else 0.0)
    for i, (t0, sign) in enumerate(onsets):
        t_next = onsets[i + 1][0] if i + 1 < len(onsets) else np.inf
        moved = np.flatnonzero((times > t0) & (times < t_next) & (steps * sign > POS_SCALE / 2))
        if moved.size:
            found.append(float(times[moved[0]] - t0))
        else:
            missed += 1
    return found, missed


def device_for(path: str, device: SpaceMouse, stack: list[Any]) -> Any:
    """What the actor reads: the SpaceMouse itself, or RosTeleop over a teleop node publishing it."""
    if path == "local":
        return device
    port = free_port()
    node_tr = open_transport(RosConfig(connect=[], listen=[f"tcp/127.0.0.1:{port}"]), "teleop_node")
    device.start()
    node = TeleopNode(node_tr, device, TeleopNodeParams(rate_hz=NODE_RATE_HZ))
    spinners = SpinThreads()
    spinners.start({"teleop": node_tr})
    stack.extend([device.stop, node_tr.shutdown, node.destroy, spinners.stop])  # closed last first
    return RosTeleop(RosTeleopConfig(ros=RosConfig(connect=[f"tcp/127.0.0.1:{port}"], listen=[])))


def run_case(path: str, seconds: float, seed: int) -> dict[str, Any]:
    hid = SyntheticHidDevice()
    sys.modules["hid"] = hid_module(hid)
    cfg = RobotEnvConfig(control_hz=CONTROL_HZ, max_episode_steps=10**6, connect_timeout_s=20.0)
    twin = LocalTwin(cfg, seed=seed)
    stack: list[Any] = []
    env_tr = twin.transport()
    spin = SpinThreads()
    spin.start({"env": env_tr})
    stream, stop = ReportStream(hid), threading.Event()
    wrapper = InterventionWrapper(
        RobotEnv(cfg, transport=env_tr, seed=seed), device_for(path, SpaceMouse(SpaceMouseConfig()), stack)
    )
    try:
        wrapper.reset()
        calls = time_driver(twin)
        stream.start()
        presser = threading.Thread(target=person, args=(stream, stop, seed, calls), daemon=True)
        presser.start()
        hold, steps, lost = np.zeros(4, np.float32), 0, 0
        hold[-1] = -1.0  # the policy holds still, gripper open: only the person moves the arm
        end = time.monotonic() + seconds
        while time.monotonic() < end or presser.is_alive():  # the last press gets its ticks too
            if time.monotonic() >= end:
                stop.set()
            lost += "teleop_lost" in wrapper.step(hold)[4]  # the arm held that step
            steps += 1
        for _ in range(3):
            wrapper.step(hold)
    finally:
        stream.stop()
        wrapper.close()
        spin.stop()
        for close in reversed(stack):
            close()
        twin.close()
    found, missed = latencies(stream.onsets, calls)
    ms = np.array(found) * 1e3
    return {
        "path": path,
        "presses": len(stream.onsets),
        "missed": missed,
        "steps": steps,
        "device_lost_steps": lost,
        "late_ticks": wrapper.env.unwrapped.counters["late_ticks"],
        "latency_ms": {
            "p50": float(np.percentile(ms, 50)),
            "p99": float(np.percentile(ms, 99)),
            "mean": float(ms.mean()),
            "min": float(ms.min()),
            "max": float(ms.max()),
        }
        if ms.size
        else {},
    }


def markdown(cases: list[dict[str, Any]], seconds: float, load: list[float]) -> str:
    names = {
        "local": "teleop=spacemouse (device on the actor's machine)",
        "node": f"teleop=ros (teleop node at {NODE_RATE_HZ:g} Hz, zenoh loopback)",
    }
    lines = [
        f"## teleop_latency: SpaceMouse report -> arm driver command on the twin, {CONTROL_HZ:g} Hz control",
        "",
        f"Synthetic SpaceMouse reports at {HID_RATE_HZ:g} Hz into the real driver; the twin's nodes in the "
        f"actor's process (env.in_process_twin=true); {seconds:g} s per path. Latency: first deflected "
        "report -> SimArm.move_to_pose with the moved target.",
        "",
        "| device path | presses | missed | p50 ms | p99 ms | min ms | max ms | late ticks | device lost |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in cases:
        lat = c["latency_ms"]
        lines.append(
            f"| {names[c['path']]} | {c['presses']} | {c['missed']} | {lat.get('p50', float('nan')):.1f} | "
            f"{lat.get('p99', float('nan')):.1f} | {lat.get('min', float('nan')):.1f} | "
            f"{lat.get('max', float('nan')):.1f} | {c['late_ticks']}/{c['steps']} | "
            f"{c['device_lost_steps']} |"
        )
    period = 1e3 / CONTROL_HZ
    lines += [
        "",
        f"The actor reads the device once per control period ({period:.0f} ms), so a report waits "
        f"0-{period:.0f} ms for its tick, and behind a teleop node 0-{1e3 / NODE_RATE_HZ:.0f} ms more "
        "for the node's poll; the command then leaves at once and reaches the driver through the arm "
        "node. A faster control rate shortens the wait, not the pipeline. Load "
        f"average (1 min) {load[0]:.1f} at the start, {load[1]:.1f} at the end on "
        f"{os.cpu_count()} cores: on a busy machine the tails include ticks the actor started late. "
        "A press is missed when no command moved the arm its way before the next press (e.g. the "
        "device counted lost, its messages older than teleop.max_age_s: the arm is held).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="pressing time per device path")
    parser.add_argument("--quick", action="store_true", help="smoke run: 5 s per path, JSON only")
    args = parser.parse_args()
    seconds = 5.0 if args.quick else args.seconds
    load_start = os.getloadavg()[0]
    cases = [run_case(path, seconds, seed=i) for i, path in enumerate(("local", "node"))]
    payload = {
        "seconds_per_path": seconds,
        "control_hz": CONTROL_HZ,
        "hid_rate_hz": HID_RATE_HZ,
        "node_rate_hz": NODE_RATE_HZ,
        "cases": cases,
        "load_avg_1m": [load_start, os.getloadavg()[0]],
    }
    table = markdown(cases, seconds, payload["load_avg_1m"])
    print(table)
    cmd = f"python -m benchmarks.teleop_latency {' '.join(sys.argv[1:])}".strip()
    name = "teleop_latency_quick" if args.quick else "teleop_latency"
    write_results(name, payload, table, command=cmd, section=not args.quick)


if __name__ == "__main__":
    main()
