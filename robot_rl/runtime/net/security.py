"""Who may talk to the learner: a token on every call, and TLS when configured.

The learner listens on localhost unless told otherwise, and refuses to listen beyond it without
a token. With no token configured, it makes a random one and writes it to
<run_dir>/transport_token (mode 600); an actor on another machine gets it by token_file or the
ROBOT_RL_TOKEN environment variable.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from robot_rl.config import TransportConfig

TOKEN_FILE = "transport_token"
TOKEN_ENV = "ROBOT_RL_TOKEN"
TOKEN_HEADER = "authorization"


def learner_token(cfg: TransportConfig, run_dir: Path) -> str:
    """The token the learner checks: configured, else the run's own (created once)."""
    if cfg.token:
        return cfg.token
    if cfg.token_file:
        return _read_token(Path(cfg.token_file))
    path = run_dir / TOKEN_FILE
    if path.exists():
        return _read_token(path)
    token = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def actor_token(cfg: TransportConfig, run_dir: Path | None = None) -> str:
    """The token an actor sends: configured, token_file, ROBOT_RL_TOKEN, or the run's file."""
    if cfg.token:
        return cfg.token
    if cfg.token_file:
        return _read_token(Path(cfg.token_file))
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV].strip()
    if run_dir is not None and (run_dir / TOKEN_FILE).exists():
        return _read_token(run_dir / TOKEN_FILE)
    raise ValueError(
        "no transport token: set transport.token_file=<copy of the learner's run_dir/transport_token>"
        f" or the {TOKEN_ENV} environment variable"
    )


def _read_token(path: Path) -> str:
    try:
        token = path.read_text().strip()
    except OSError as err:
        raise ValueError(f"cannot read the transport token from {path}: {err}") from err
    if not token:
        raise ValueError(f"{path} holds no token")
    return token


def is_loopback(address: str) -> bool:
    host = address.rpartition(":")[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1")


def _read(path: str | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


def server_credentials(cfg: TransportConfig) -> grpc.ServerCredentials | None:
    if not cfg.tls_cert:
        return None
    if cfg.require_client_cert and not cfg.tls_ca:
        raise ValueError("transport.require_client_cert=true needs transport.tls_ca (the client CA)")
    return grpc.ssl_server_credentials(
        [(_read(cfg.tls_key), _read(cfg.tls_cert))],
        root_certificates=_read(cfg.tls_ca),
        require_client_auth=cfg.require_client_cert,
    )


def channel_credentials(cfg: TransportConfig) -> grpc.ChannelCredentials | None:
    """TLS for the actor when it has a CA to check the learner against."""
    if not cfg.tls_ca:
        return None
    if bool(cfg.tls_client_cert) != bool(cfg.tls_client_key):
        raise ValueError("transport.tls_client_cert and transport.tls_client_key go together")
    return grpc.ssl_channel_credentials(
        root_certificates=_read(cfg.tls_ca),
        private_key=_read(cfg.tls_client_key),
        certificate_chain=_read(cfg.tls_client_cert),
    )


class TokenCheck(grpc.ServerInterceptor):
    """Refuses any call without the right token before its handler runs."""

    def __init__(self, token: str, on_refuse: Callable[[str, bytes, str], None] | None = None) -> None:
        """on_refuse(method, raw request, peer address): told of every refused call."""
        self._expected = f"Bearer {token}".encode()
        self._on_refuse = on_refuse
        self.refused = 0

    def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        sent = dict(details.invocation_metadata or ()).get(TOKEN_HEADER, "")
        if hmac.compare_digest(str(sent).encode(), self._expected):
            return continuation(details)
        self.refused += 1
        method = details.method

        def refuse(request: Any, context: grpc.ServicerContext) -> Any:
            if self._on_refuse is not None:
                self._on_refuse(method, request, context.peer())
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "wrong or missing transport token")

        if method.endswith("WatchWeights"):
            return grpc.unary_stream_rpc_method_handler(refuse)
        return grpc.unary_unary_rpc_method_handler(refuse)


def call_metadata(token: str) -> tuple[tuple[str, str], ...]:
    return ((TOKEN_HEADER, f"Bearer {token}"),)
