"""Which ROS 2 transport a process opens, as config: the one place a backend is chosen.

zenoh needs no ROS install and speaks rmw_zenoh's format; rclpy needs a sourced ROS 2 install.
The zenoh defaults make the process a peer on loopback that connects to a router or a bringup
at tcp/127.0.0.1:7447, with no multicast scouting, so two robots on one LAN never meet by
accident.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from robot_rl.ros.transport import Transport

BACKENDS = ("zenoh", "rclpy")


@dataclass
class RosConfig:
    backend: str = "zenoh"  # zenoh (no ROS needed) | rclpy (a sourced ROS 2 install)
    domain_id: int = 0  # ROS_DOMAIN_ID
    namespace: str = ""
    distro: str = "humble"  # message definitions and type hashes: humble | jazzy
    # zenoh only: endpoints to connect to and to listen on ("tcp/HOST:PORT").
    connect: list[str] = field(default_factory=lambda: ["tcp/127.0.0.1:7447"])
    listen: list[str] = field(default_factory=lambda: ["tcp/127.0.0.1:0"])

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"ros.backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.distro not in ("humble", "jazzy"):
            raise ValueError(f"ros.distro must be humble or jazzy, got {self.distro!r}")
        if not isinstance(self.domain_id, int) or not 0 <= self.domain_id <= 232:
            raise ValueError(f"ros.domain_id must be an integer in [0, 232], got {self.domain_id!r}")
        for endpoint in [*self.connect, *self.listen]:
            proto, _, address = str(endpoint).partition("/")
            if proto not in ("tcp", "udp", "tls", "quic", "unixsock-stream") or not address:
                raise ValueError(f"ros endpoint must look like tcp/HOST:PORT, got {endpoint!r}")


def open_transport(cfg: RosConfig, node_name: str) -> Transport:
    """A transport for one node, on the backend cfg names."""
    if cfg.backend == "rclpy":
        from robot_rl.ros.rclpy_backend import RclpyTransport

        return RclpyTransport(node_name, cfg.namespace, cfg.distro)  # type: ignore[arg-type]
    from robot_rl.ros.zenoh_backend import ZenohConfig, ZenohTransport

    return ZenohTransport(
        ZenohConfig(
            domain_id=cfg.domain_id,
            node_name=node_name,
            namespace=cfg.namespace,
            distro=cfg.distro,  # type: ignore[arg-type]
            connect=tuple(cfg.connect),
            listen=tuple(cfg.listen),
        )
    )
