"""Who may talk to the learner: the token (where each side finds it) and TLS, mutual or not."""

from __future__ import annotations

import datetime
import ipaddress
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from robot_rl.config import TransportConfig

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    HAVE_CRYPTOGRAPHY = True
except ImportError:  # only the TLS tests need it
    HAVE_CRYPTOGRAPHY = False
from robot_rl.runtime.net import protocol_pb2 as pb
from robot_rl.runtime.net.client import GrpcActorTransport
from robot_rl.runtime.net.codec import PROTOCOL_VERSION, SERVICE
from robot_rl.runtime.net.security import (
    TOKEN_ENV,
    TOKEN_FILE,
    actor_token,
    call_metadata,
    channel_credentials,
    is_loopback,
    learner_token,
    server_credentials,
)
from robot_rl.runtime.net.server import GrpcLearnerTransport

pytestmark = pytest.mark.timeout(60)

SPACES = '{"spaces": "any"}'
TOKEN = "s3cret"


def _cfg(**overrides) -> TransportConfig:
    base = {"kind": "grpc", "listen": "127.0.0.1:0", "heartbeat_s": 0.2, "lost_after_s": 0.8}
    return TransportConfig(**(base | {"call_timeout_s": 2.0, "reconnect_max_s": 0.5} | overrides))


@pytest.fixture(autouse=True)
def _no_token_env(monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)


# ---------------------------------------------------------------- the learner's token
def test_learner_token_made_once_with_mode_600(tmp_path):
    token = learner_token(_cfg(), tmp_path)
    path = tmp_path / TOKEN_FILE
    assert len(token) >= 24 and path.read_text().strip() == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    mtime = path.stat().st_mtime_ns
    assert learner_token(_cfg(), tmp_path) == token  # a resumed learner keeps its token
    assert path.stat().st_mtime_ns == mtime
    other = tmp_path / "other"
    other.mkdir()
    assert learner_token(_cfg(), other) != token  # each run its own


def test_learner_token_configured_wins(tmp_path):
    (tmp_path / "tok").write_text("  from-file \n")
    assert learner_token(_cfg(token="given"), tmp_path) == "given"
    assert learner_token(_cfg(token_file=str(tmp_path / "tok")), tmp_path) == "from-file"
    assert not (tmp_path / TOKEN_FILE).exists()  # nothing written when one is configured


@pytest.mark.parametrize("content", [None, "", "  \n"], ids=["missing", "empty", "blank"])
def test_unusable_token_file_named(tmp_path, content):
    path = tmp_path / "tok"
    if content is not None:
        path.write_text(content)
    match = "cannot read the transport token" if content is None else "holds no token"
    with pytest.raises(ValueError, match=match) as info:
        learner_token(_cfg(token_file=str(path)), tmp_path)
    assert str(path) in str(info.value)
    with pytest.raises(ValueError, match=match):
        actor_token(_cfg(token_file=str(path)))


# ---------------------------------------------------------------- the actor's token
def test_actor_token_precedence(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / TOKEN_FILE).write_text("from-run-dir\n")
    (tmp_path / "tok").write_text("from-token-file\n")
    monkeypatch.setenv(TOKEN_ENV, " from-env ")
    full = {"token": "from-config", "token_file": str(tmp_path / "tok")}
    assert actor_token(_cfg(**full), run_dir) == "from-config"
    assert actor_token(_cfg(token_file=full["token_file"]), run_dir) == "from-token-file"
    assert actor_token(_cfg(), run_dir) == "from-env"
    monkeypatch.delenv(TOKEN_ENV)
    assert actor_token(_cfg(), run_dir) == "from-run-dir"  # learner and actor share a run folder


def test_actor_without_a_token_told_where_to_get_one(tmp_path):
    with pytest.raises(ValueError, match=f"no transport token: set transport.token_file=.*{TOKEN_ENV}"):
        actor_token(_cfg(), tmp_path)
    with pytest.raises(ValueError, match="no transport token"):
        actor_token(_cfg())


def test_learner_and_actor_agree_through_the_run_dir(tmp_path):
    with pytest.raises(ValueError, match="no transport token"):
        actor_token(_cfg(), tmp_path)  # before the learner made one
    token = learner_token(_cfg(), tmp_path)
    assert actor_token(_cfg(), tmp_path) == token


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1:5", True),
        ("localhost:5", True),
        ("[::1]:5", True),
        ("0.0.0.0:5", False),
        ("[::]:5", False),
        ("10.0.0.7:5", False),
        ("gpu-box:5", False),
    ],
)
def test_is_loopback(address, loopback):
    assert is_loopback(address) == loopback


# ---------------------------------------------------------------- a server to talk to
@pytest.fixture
def serve(tmp_path) -> Iterator:
    servers: list[GrpcLearnerTransport] = []

    def start(**overrides) -> GrpcLearnerTransport:
        server = GrpcLearnerTransport(
            _cfg(token=TOKEN, **overrides), tmp_path / f"s{len(servers)}", SPACES, TOKEN
        )
        server.start({})
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close(grace_s=0.1)


def _connect(channel: grpc.Channel, token: str | None = TOKEN, timeout_s: float = 5.0) -> pb.Welcome:
    connect = channel.unary_unary(f"/{SERVICE}/Connect", pb.Hello.SerializeToString, pb.Welcome.FromString)
    hello = pb.Hello(protocol_version=PROTOCOL_VERSION, actor_id=0, spaces=SPACES, host="test")
    metadata = call_metadata(token) if token is not None else None
    return connect(hello, timeout=timeout_s, metadata=metadata)


@pytest.mark.parametrize("token", [None, "", "wrong", TOKEN + "x", TOKEN[:-1]])
def test_every_call_needs_the_token(serve, token):
    server = serve()
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        with pytest.raises(grpc.RpcError) as info:
            _connect(channel, token)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "transport token" in info.value.details()
        beat = channel.unary_unary(
            f"/{SERVICE}/Beat", pb.Heartbeat.SerializeToString, pb.HeartbeatReply.FromString
        )
        with pytest.raises(grpc.RpcError) as info:
            beat(pb.Heartbeat(actor_id=0), timeout=5.0, metadata=call_metadata("wrong"))
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        watch = channel.unary_stream(
            f"/{SERVICE}/WatchWeights", pb.WeightsRequest.SerializeToString, pb.Weights.FromString
        )
        with pytest.raises(grpc.RpcError) as info:
            list(watch(pb.WeightsRequest(actor_id=0), timeout=5.0, metadata=call_metadata("wrong")))
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert server.refused_tokens == 3
        assert _connect(channel).session  # the right token still gets in
    assert server.actors()[0]["actor_id"] == 0


# ---------------------------------------------------------------- TLS
needs_cryptography = pytest.mark.skipif(
    not HAVE_CRYPTOGRAPHY, reason="the TLS tests make certificates with the cryptography package"
)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(
    subject: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None, usage: str | None
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A CA (issuer None) or a server / client certificate signed by `issuer`."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(subject) if issuer is None else issuer[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if usage == "server":
        san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    elif usage == "client":
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    signer = key if issuer is None else issuer[1]
    return builder.sign(signer, hashes.SHA256()), key


def _write(
    folder: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[str, str]:
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(cert_path), str(key_path)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, str]:
    """A CA with a server and a client certificate, and another CA with its own client."""
    folder = tmp_path_factory.mktemp("pki")
    ca = _issue("robot-rl test CA", None, None)
    other_ca = _issue("someone else's CA", None, None)
    files: dict[str, str] = {}
    files["ca"], _ = _write(folder, "ca", *ca)
    files["other_ca"], _ = _write(folder, "other_ca", *other_ca)
    files["server_cert"], files["server_key"] = _write(folder, "server", *_issue("learner", ca, "server"))
    files["client_cert"], files["client_key"] = _write(folder, "client", *_issue("actor-0", ca, "client"))
    files["rogue_cert"], files["rogue_key"] = _write(folder, "rogue", *_issue("rogue", other_ca, "client"))
    return files


def _tls_server(serve, pki: dict[str, str], mutual: bool = False) -> GrpcLearnerTransport:
    return serve(
        tls_cert=pki["server_cert"],
        tls_key=pki["server_key"],
        tls_ca=pki["ca"] if mutual else None,
        require_client_cert=mutual,
    )


def _actor_cfg(server: GrpcLearnerTransport, host: str = "127.0.0.1", **tls) -> TransportConfig:
    return _cfg(learner=f"{host}:{server.port}", token=TOKEN, **tls)


def _reaches(cfg: TransportConfig, timeout_s: float = 3.0) -> grpc.StatusCode | None:
    """None if a Connect through the credentials the actor would use succeeds, else its code."""
    creds = channel_credentials(cfg)
    channel = grpc.insecure_channel(cfg.learner) if creds is None else grpc.secure_channel(cfg.learner, creds)
    with channel:
        try:
            _connect(channel, timeout_s=timeout_s)
        except grpc.RpcError as err:
            return err.code()
    return None


def _actor_connects(cfg: TransportConfig) -> bool:
    """Whether the actor's own transport gets in (it keeps retrying; a bounded wait)."""
    actor = GrpcActorTransport(cfg, 0, SPACES, TOKEN)
    try:
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and not actor.connected() and not actor.failure:
            time.sleep(0.02)
        return actor.connected()
    finally:
        actor.close(final_beat=False)


@needs_cryptography
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_tls_actor_with_the_right_ca_connects(serve, pki, host):
    server = _tls_server(serve, pki)
    cfg = _actor_cfg(server, host, tls_ca=pki["ca"])
    assert _reaches(cfg) is None
    assert _actor_connects(cfg)
    assert [a["actor_id"] for a in server.actors()] == [0]


@needs_cryptography
@pytest.mark.parametrize("tls", [{}, {"tls_ca": "other_ca"}], ids=["no-tls", "wrong-ca"])
def test_tls_actor_without_tls_or_with_another_ca_stays_out(serve, pki, tls):
    server = _tls_server(serve, pki)
    cfg = _actor_cfg(server, **{k: pki[v] for k, v in tls.items()})
    assert _reaches(cfg, timeout_s=2.0) in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    assert server.actors() == []
    assert _actor_connects(_actor_cfg(server, tls_ca=pki["ca"]))  # the learner still serves


@needs_cryptography
def test_plaintext_learner_refuses_a_tls_actor(serve, pki):
    server = serve()
    cfg = _actor_cfg(server, tls_ca=pki["ca"])
    assert _reaches(cfg, timeout_s=2.0) in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    assert server.actors() == []


@needs_cryptography
def test_tls_still_needs_the_token(serve, pki):
    server = _tls_server(serve, pki)
    creds = channel_credentials(_actor_cfg(server, tls_ca=pki["ca"]))
    with (
        grpc.secure_channel(f"127.0.0.1:{server.port}", creds) as channel,
        pytest.raises(grpc.RpcError) as info,
    ):
        _connect(channel, token="wrong")
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


@needs_cryptography
@pytest.mark.parametrize(
    ("client", "gets_in"),
    [("client", True), (None, False), ("rogue", False)],
    ids=["our-client-cert", "no-client-cert", "cert-from-another-ca"],
)
def test_mutual_tls(serve, pki, client, gets_in):
    server = _tls_server(serve, pki, mutual=True)
    tls = {"tls_ca": pki["ca"]}
    if client is not None:
        tls |= {"tls_client_cert": pki[f"{client}_cert"], "tls_client_key": pki[f"{client}_key"]}
    cfg = _actor_cfg(server, **tls)
    code = _reaches(cfg, timeout_s=2.0)
    if gets_in:
        assert code is None
        assert _actor_connects(cfg)
        assert [a["actor_id"] for a in server.actors()] == [0]
    else:
        assert code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
        assert server.actors() == []


def test_mutual_tls_needs_the_client_ca():
    cfg = _cfg(tls_cert="server.crt", tls_key="server.key", require_client_cert=True)
    with pytest.raises(ValueError, match=r"require_client_cert=true needs transport\.tls_ca"):
        server_credentials(cfg)


def test_client_cert_and_key_go_together():
    with pytest.raises(ValueError, match=r"tls_client_cert and transport\.tls_client_key go together"):
        channel_credentials(_cfg(tls_ca="ca.crt", tls_client_cert="client.crt"))


def test_server_cert_and_key_go_together():
    with pytest.raises(ValueError, match=r"tls_cert and transport\.tls_key go together"):
        _cfg(tls_cert="server.crt")


def test_no_tls_configured_means_plaintext():
    assert server_credentials(_cfg()) is None
    assert channel_credentials(_cfg()) is None
