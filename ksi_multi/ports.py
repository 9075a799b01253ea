"""Host ports of a job: whether one is free on the host's address, and a free one chosen per job.

Two jobs of one user may share hosts, so fixed ports would collide; by default each job takes free ones and
publishes them (the mesh's to the other nodes, the API server's in the kubeconfig), as kind does."""

from __future__ import annotations

import socket

KINDS = {"tcp": socket.SOCK_STREAM, "udp": socket.SOCK_DGRAM}


def bind_error(proto: str, address: str, port: int) -> int | None:
    """The errno of binding address:port, or None when the port is free there."""
    with socket.socket(socket.AF_INET, KINDS[proto]) as sock:
        if proto == "tcp":  # as every server does: connections in TIME_WAIT do not make a port busy
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError as exc:
            return exc.errno
    return None


def free(proto: str, address: str) -> int:
    """A port free on address now; the kernel picks it from its ephemeral range, at random."""
    with socket.socket(socket.AF_INET, KINDS[proto]) as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def chosen(configured: int, proto: str, address: str) -> int:
    """The configured port, or (0) a free one."""
    return configured or free(proto, address)
