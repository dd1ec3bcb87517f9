"""One side of the cross-process zenoh test (not collected by pytest).

`python zenoh_peer.py env PORT SECONDS` listens on tcp/127.0.0.1:PORT, subscribes to the arm's joint
states, serves /env/report, and prints a JSON summary once a report said it had enough.
`python zenoh_peer.py arm PORT SECONDS` connects there, publishes joint states (and now and then
a garbled payload), and asks /env/report until the env node has received enough.
Both stop by themselves after SECONDS at the latest.
"""

from __future__ import annotations

import json
import sys
import time

from robot_rl.ros import codec, messages
from robot_rl.ros.transport import QoS, ServiceTimeout, ServiceUnavailable
from robot_rl.ros.zenoh_backend import ZenohConfig, ZenohTransport

ENOUGH = 5
JOINTS = ["joint1", "joint2"]


def run_env(port: int, seconds: float) -> None:
    config = ZenohConfig(node_name="env", listen=(f"tcp/127.0.0.1:{port}",), connect=())
    with ZenohTransport(config) as node:
        received: list[float] = []
        reports: list[int] = []

        def on_joints(msg: object) -> None:
            received.append(float(messages.joint_state_from_msg(msg)[1][0]))

        def report(_request: object) -> object:
            reports.append(len(received))
            return messages.trigger_response(len(received) >= ENOUGH, str(len(received)))

        node.subscribe("/arm/joint_states", codec.JOINT_STATE, on_joints, QoS.sensor_data())
        node.create_service("/env/report", codec.TRIGGER, report)
        print("READY", flush=True)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not (reports and reports[-1] >= ENOUGH):
            node.spin_once(0.05)
        linger = time.monotonic() + 0.3  # let the last reply leave before the session closes
        while time.monotonic() < linger:
            node.spin_once(0.05)
        print(json.dumps({"received": received, "dropped_garbled": dict(node.dropped_garbled)}), flush=True)


def run_arm(port: int, seconds: float) -> None:
    config = ZenohConfig(node_name="arm", listen=(), connect=(f"tcp/127.0.0.1:{port}",))
    with ZenohTransport(config) as node:
        publisher = node.create_publisher("/arm/joint_states", codec.JOINT_STATE, QoS.sensor_data())
        deadline = time.monotonic() + seconds
        published, response = 0, None
        while time.monotonic() < deadline and not (response is not None and response.success):
            published += 1
            publisher.publish(
                messages.joint_state_msg(JOINTS, [float(published), 0.0], [0.0, 0.0], float(published))
            )
            if published % 5 == 0:
                publisher.publish_raw(b"\x00\x01\x00\x00 not a joint state")
            if published % 10 == 0:
                try:
                    response = node.call_service(
                        "/env/report", codec.TRIGGER, messages.trigger_request(), 1.0
                    )
                except (ServiceUnavailable, ServiceTimeout):
                    response = None
            time.sleep(0.01)
        summary = {"published": published, "success": bool(response is not None and response.success)}
        print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    role, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    {"env": run_env, "arm": run_arm}[role](port, seconds)
