"""Teleop node: a teleop device (drivers/teleop) on ROS 2 topics, so the device can be plugged into
another machine than the actor's, which reads it with `teleop=ros` (robot_rl/ros/teleop_topics.py).

Every tick (rate_hz) the node polls the device and publishes `teleop/twist` (TwistStamped) and
`teleop/joy` (Joy) in the layout teleop_topics.py documents, idle or not: the steady stream is the
heartbeat that tells a subscriber a dead node from an idle one. A device that disconnects is not
papered over: the node publishes nothing until the device is back (it is started again every
restart_every_s), so every subscriber sees the topics go stale and holds the arm.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from drivers.teleop.base import TeleopDevice, TeleopError
from robot_rl.hil.devices import HARDWARE, make_hardware_device
from robot_rl.ros import topics
from robot_rl.ros.teleop_topics import FRAME_ID, reading_msgs
from robot_rl.ros.transport import Transport

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TeleopNodeParams:
    """The node's declared parameters."""

    rate_hz: float = 50.0  # poll + publish; a reader's max_age_s (0.25 s) spans 12 ticks
    frame_id: str = FRAME_ID
    twist_topic: str = topics.TELEOP_TWIST.name
    joy_topic: str = topics.TELEOP_JOY.name
    restart_every_s: float = 1.0  # a lost device is started again this often (replugged, it is back)

    def __post_init__(self) -> None:
        if not (isinstance(self.rate_hz, (int, float)) and 5.0 <= self.rate_hz <= 1000.0):
            raise ValueError(f"TeleopNodeParams.rate_hz must be in [5, 1000], got {self.rate_hz!r}")
        if not (isinstance(self.restart_every_s, (int, float)) and self.restart_every_s > 0):
            raise ValueError(f"TeleopNodeParams.restart_every_s must be > 0, got {self.restart_every_s!r}")


class TeleopNode:
    """Publishes a started device's readings; the device is the caller's to start and stop.

    counters: published (ticks with both messages out), lost (the device disconnected),
    restarts (started again after a loss), bad_readings (a reading the layout cannot carry:
    nothing is published for it, as for a lost device).
    """

    def __init__(
        self,
        transport: Transport,
        device: TeleopDevice,
        params: TeleopNodeParams | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.params = p = params or TeleopNodeParams()
        self.device, self.clock = device, clock
        self.counters: Counter[str] = Counter()
        self._lost_at: float | None = None  # clock time of the last loss or failed restart
        self._twist_pub = topics.TELEOP_TWIST.publisher(transport, p.twist_topic)
        self._joy_pub = topics.TELEOP_JOY.publisher(transport, p.joy_topic)
        self._handles = [transport.create_timer(1.0 / p.rate_hz, self._on_timer)]

    def _on_timer(self) -> None:
        if self._lost_at is not None and not self._restart():
            return
        try:
            reading = self.device.poll()
        except TeleopError as err:  # TeleopDisconnected, or a device that cannot be read
            self.counters["lost"] += 1
            self._lost_at = self.clock()
            log.error("teleop device lost: %s; publishing stops, so readers hold the arm", err)
            return
        try:
            twist, joy = reading_msgs(reading, self.clock(), self.params.frame_id)
        except ValueError as err:  # a device bug: better silence (a hold) than a made-up command
            self.counters["bad_readings"] += 1
            log.error("teleop reading not published: %s", err)
            return
        self._twist_pub.publish(twist)
        self._joy_pub.publish(joy)
        self.counters["published"] += 1

    def _restart(self) -> bool:
        """Whether the lost device is back (tried every restart_every_s)."""
        assert self._lost_at is not None
        if self.clock() - self._lost_at < self.params.restart_every_s:
            return False
        try:
            self.device.stop()
            self.device.start()
        except TeleopError as err:
            self._lost_at = self.clock()
            log.warning("teleop device still lost: %s", err)
            return False
        self._lost_at = None
        self.counters["restarts"] += 1
        log.info("teleop device back")
        return True

    def destroy(self) -> None:
        """Cancel the timer; the device and the transport are the caller's."""
        for handle in self._handles:
            handle.cancel()


def main(argv: list[str] | None = None) -> None:
    """Publish a device over zenoh, listening for the actor's machine, until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="keyboard", choices=sorted(HARDWARE))
    parser.add_argument("--rate-hz", type=float, default=50.0)
    parser.add_argument("--listen", default="tcp/0.0.0.0:7447", help="where the actor connects")
    args = parser.parse_args(argv)
    from robot_rl.ros.connect import RosConfig, open_transport

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    device = make_hardware_device(args.device)
    transport = open_transport(RosConfig(connect=[], listen=[args.listen]), "teleop_node")
    device.start()
    node = TeleopNode(transport, device, TeleopNodeParams(rate_hz=args.rate_hz))
    try:
        transport.spin()
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy()
        transport.shutdown()
        device.stop()


if __name__ == "__main__":
    main()
