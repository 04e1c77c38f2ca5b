"""Serving the dashboard on a loopback address with uvicorn."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

import uvicorn
from starlette.applications import Starlette

from fedledger.chain.errors import FedledgerError


class DashboardError(FedledgerError):
    """The dashboard cannot start: a host that is not loopback, a port in use."""


def loopback_socket(host: str, port: int) -> socket.socket:
    """A listening socket on `host`:`port` (0: a free port); only loopback addresses are allowed."""
    if host == "localhost":
        host = "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise DashboardError(f"--host {host!r} is not an IP address; use 127.0.0.1") from None
    if not address.is_loopback or address.version != 4:
        raise DashboardError(
            f"--host {host} is not an IPv4 loopback address: the dashboard only listens on this "
            "machine (127.0.0.1); reach it from elsewhere through an SSH tunnel"
        )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise DashboardError(f"cannot listen on {host}:{port}: {exc.strerror}; pick another --port") from exc
    sock.listen(128)
    return sock


def serve(app: Starlette, sock: socket.socket, *, on_ready: Callable[[str], None]) -> None:
    """Serves until SIGINT or SIGTERM; `on_ready` gets the page's URL first."""
    host, port = sock.getsockname()[:2]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    on_ready(f"http://{host}:{port}/")
    server.run(sockets=[sock])
