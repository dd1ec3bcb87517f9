"""Names on the wire in rmw_zenoh's format, so a ROS 2 system on rmw_zenoh sees our topics.

Written from rmw_zenoh's design document (docs/design.md in ros2/rmw_zenoh), which documents:
- data key expressions `<domain_id>/<fully qualified name>/<DDS type name>/<type hash>`, with
  the leading `/` of the name dropped and the type name in its DDS form
  (`std_msgs::msg::dds_::String_`); services use the service type and its hash;
- liveliness tokens `@ros2_lv/<domain_id>/<session_id>/<node_id>/<entity_id>/<kind>/<enclave>/
  <namespace>/<node>[/<topic>/<type>/<hash>/<qos>]`, with `/` in names mangled to `%` and an
  empty enclave or namespace written `%`;
- the attachment on every publication, request and reply: sequence number (int64 LE), source
  timestamp (int64 ns since the UNIX epoch, LE), GID length (one byte, 16) and the 16-byte GID.
The QoS chunk of a token follows the document's examples (`::,10:,:,:,,` for reliable, volatile,
keep-last 10): defaults are left empty, best effort is written as rmw's enum value 2.
Humble has no type hashes; Humble-era rmw_zenoh writes `TypeHashNotSupported` there.
Nothing here has been checked against a live ROS 2 system.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Literal

from robot_rl.ros.transport import QoS

ADMIN_SPACE = "@ros2_lv"
EntityKind = Literal["NN", "MP", "MS", "SS", "SC"]
GID_SIZE = 16
_ATTACHMENT = struct.Struct("<qqB16s")
_TOKEN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BEST_EFFORT = 2  # rmw_qos_reliability_policy_e: RELIABLE = 1, BEST_EFFORT = 2


def fully_qualified_name(name: str, namespace: str = "") -> str:
    """The ROS 2 fully qualified name of a topic or service: a relative name is put under the
    namespace. ValueError for names ROS 2 would reject, which could also break a key expression."""
    ns = namespace.rstrip("/")
    if ns and not ns.startswith("/"):
        ns = "/" + ns
    full = name if name.startswith("/") else f"{ns}/{name}"
    tokens = full[1:].split("/")
    if full == "/" or not all(_TOKEN.match(token) for token in tokens) or "__" in full:
        raise ValueError(
            f"invalid ROS 2 name {name!r} (namespace {namespace!r}): tokens of letters, digits and _, "
            "not starting with a digit, separated by single /"
        )
    return full


def dds_type_name(type_name: str) -> str:
    """sensor_msgs/msg/Image -> sensor_msgs::msg::dds_::Image_ (the name DDS and rmw_zenoh use)."""
    parts = type_name.split("/")
    if len(parts) != 3 or parts[1] not in ("msg", "srv") or not all(parts):
        raise ValueError(f"expected a ROS 2 type name pkg/msg/Name or pkg/srv/Name, got {type_name!r}")
    package, kind, name = parts
    return f"{package}::{kind}::dds_::{name}_"


def mangle(name: str) -> str:
    """A name as one key-expression chunk: every / becomes %, and empty becomes %."""
    return name.replace("/", "%") or "%"


def topic_key_expr(domain_id: int, fq_name: str, type_name: str, type_hash: str) -> str:
    """Key expression of a topic or service's data."""
    return f"{domain_id}/{fq_name.strip('/')}/{dds_type_name(type_name)}/{type_hash}"


def qos_chunk(qos: QoS) -> str:
    """reliability:durability:history,depth:deadline:lifespan:liveliness, defaults left empty."""
    reliability = "" if qos.reliability == "reliable" else str(_BEST_EFFORT)
    return f"{reliability}::,{qos.depth}:,:,:,,"


@dataclass(frozen=True)
class NodeId:
    """Where a node sits in the graph: domain, zenoh session, node number, namespace and name."""

    domain_id: int
    session_id: str
    node_id: int
    namespace: str
    node_name: str
    enclave: str = ""

    def prefix(self, entity_id: int, kind: EntityKind) -> str:
        return (
            f"{ADMIN_SPACE}/{self.domain_id}/{self.session_id}/{self.node_id}/{entity_id}/{kind}/"
            f"{mangle(self.enclave)}/{mangle(self.namespace)}/{self.node_name}"
        )


def node_token(node: NodeId) -> str:
    """Liveliness token announcing a node (its entity id is its node id)."""
    return node.prefix(node.node_id, "NN")


def entity_token(
    node: NodeId, entity_id: int, kind: EntityKind, fq_name: str, type_name: str, type_hash: str, qos: QoS
) -> str:
    """Liveliness token announcing a publisher (MP), subscription (MS), service (SS) or client (SC)."""
    return (
        f"{node.prefix(entity_id, kind)}/{mangle(fq_name)}/{dds_type_name(type_name)}/{type_hash}/"
        f"{qos_chunk(qos)}"
    )


@dataclass(frozen=True)
class Attachment:
    """What rmw_zenoh attaches to each sample, request and reply: which message of which sender."""

    sequence_number: int
    source_timestamp_ns: int
    gid: bytes

    def to_bytes(self) -> bytes:
        if len(self.gid) != GID_SIZE:
            raise ValueError(f"a GID is {GID_SIZE} bytes, got {len(self.gid)}")
        return _ATTACHMENT.pack(self.sequence_number, self.source_timestamp_ns, GID_SIZE, self.gid)

    @classmethod
    def from_bytes(cls, data: bytes) -> Attachment:
        """ValueError when data is not an attachment in rmw_zenoh's layout."""
        if len(data) != _ATTACHMENT.size:
            raise ValueError(f"an rmw_zenoh attachment is {_ATTACHMENT.size} bytes, got {len(data)}")
        seq, stamp, gid_len, gid = _ATTACHMENT.unpack(data)
        if gid_len != GID_SIZE:
            raise ValueError(f"attachment GID length must be {GID_SIZE}, got {gid_len}")
        return cls(seq, stamp, gid)
