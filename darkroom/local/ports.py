"""The local cloud's ports, checked before anything starts (standard library only: the
CLI checks them before it imports the cloud)."""

from __future__ import annotations

import socket


class PortInUse(OSError):
    """A port the local cloud was told to use is taken; the message says which and what
    to do (werkzeug would only log it, and the cloud would wait for a server never up)."""


def check_port_free(host: str, port: int, what: str) -> None:
    if port == 0:
        return
    # SO_REUSEADDR as werkzeug binds: a socket of a stopped cloud lingering in TIME_WAIT
    # is no conflict, a listening one is.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise PortInUse(
                f"port {port} on {host} ({what}) is in use, perhaps by another "
                "`darkroom local up`: stop that one, or choose other ports with --port"
            ) from exc
