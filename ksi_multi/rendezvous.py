"""Rank-0 rendezvous: an authenticated HTTP meeting point where every agent registers.

Requests and responses carry an HMAC-SHA256 signature made with the per-job secret
(0600 in the job directory on the shared filesystem), so the secret itself never crosses
the network and an agent knows the answers come from its own job's coordinator.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import logging
import re
import secrets
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ksi_multi.errors import KsiError

log = logging.getLogger(__name__)

AUTH_HEADER = "X-Ksi-Auth"
CLOCK_SKEW = 300  # seconds a signature stays valid
NONCE = re.compile(r"[0-9a-f]{32}")
MAX_BODY = 1 << 20
# Anyone on the network can connect: connections are bounded in number (per peer and in all) and in time,
# so neither idle nor slow senders can exhaust rank 0's threads and memory or lock the ranks out.
MAX_CONNECTIONS = 64
MAX_CONNECTIONS_PER_PEER = 8
CONNECTION_DEADLINE = 10.0  # seconds a connection may stay open, request and reply included
REPORTED = ("proxy", "nodeports")  # node fields an agent may report about its own node


def sign(secret: str, method: str, path: str, body: bytes, ts: int | None = None, nonce: str | None = None) -> str:
    """`ts:nonce:mac`. A request's nonce is fresh (the server accepts it once); a reply carries the nonce of
    the request it answers, so it cannot be passed off as the answer to another one."""
    ts = int(time.time()) if ts is None else ts
    nonce = secrets.token_hex(16) if nonce is None else nonce
    mac = hmac.new(secret.encode(), f"{ts}\n{nonce}\n{method}\n{path}\n".encode() + body, hashlib.sha256)
    return f"{ts}:{nonce}:{mac.hexdigest()}"


def nonce_of(header: str | None) -> str:
    parts = (header or "").split(":")
    return parts[1] if len(parts) == 3 else ""


def check(secret: str, header: str | None, method: str, path: str, body: bytes, now: float | None = None,
          nonce: str | None = None) -> str | None:
    """Why a signature is not this job's for this message (None: it is)."""
    if not header:
        return "no job signature"
    parts = header.split(":")
    if len(parts) != 3 or not parts[0].isascii() or not parts[0].isdigit() or not NONCE.fullmatch(parts[1]):
        return "a malformed job signature"
    ts, their_nonce, _ = int(parts[0]), parts[1], parts[2]
    if nonce is not None and their_nonce != nonce:
        return "a signature made for another request"
    if not hmac.compare_digest(sign(secret, method, path, body, ts, their_nonce), header):
        return "a wrong job signature"
    now = time.time() if now is None else now
    if abs(now - ts) > CLOCK_SKEW:
        return (f"a signature {now - ts:+.0f} s off this host's clock (more than {CLOCK_SKEW} s): "
                "the hosts' clocks disagree (check NTP)")
    return None


def verify(secret: str, header: str | None, method: str, path: str, body: bytes, now: float | None = None,
           nonce: str | None = None) -> bool:
    return check(secret, header, method, path, body, now, nonce) is None


class Rendezvous:
    """Membership state: who is expected (host name per rank), who registered, who has seen the result."""

    def __init__(self, expected: Sequence[str]) -> None:
        self.expected = list(expected)
        self.members: dict[int, dict[str, Any]] = {}
        self.acknowledged: set[int] = set()
        self.lost: dict[int, str] = {}  # rank -> why, as reported by the node's own agent
        self.reports: dict[int, dict[str, Any]] = {}  # rank -> node fields its agent reported (REPORTED)
        self.closed: str | None = None
        self.changed = threading.Condition()
        self.on_change: Callable[[], None] | None = None

    def _complete(self) -> bool:
        return len(self.members) == len(self.expected)

    def register(self, body: Any) -> tuple[int, dict[str, Any]]:
        problem = _check_member(body, len(self.expected))
        if problem:
            return 400, {"error": problem}
        rank, host = body["rank"], body["hostname"]
        with self.changed:
            if self.closed:
                return 410, {"error": f"the rendezvous is closed: {self.closed}"}
            if self.expected[rank] != host:
                return 409, {"error": f"rank {rank} belongs to {self.expected[rank]}, not {host}"}
            self.members[rank] = {"rank": rank, "hostname": host, "address": body["address"],
                                  "info": dict(body.get("info") or {})}
            self.changed.notify_all()
        if self.on_change:
            self.on_change()
        return 200, {"registered": rank, "count": len(self.members), "expected": len(self.expected)}

    def report_lost(self, body: Any) -> tuple[int, dict[str, Any]]:
        """A member whose node died says so, so rank 0 can mark it at once instead of waiting for Kubernetes."""
        problem = _check_sender(body, self.expected)
        if problem:
            return problem
        rank = body["rank"]
        with self.changed:
            self.lost.setdefault(rank, printable(body.get("reason") or "lost"))
            self.changed.notify_all()
        return 200, {"lost": rank}

    def report_node(self, body: Any) -> tuple[int, dict[str, Any]]:
        """A member reports something about its node that status.json shows (e.g. its egress proxy restarted)."""
        problem = _check_sender(body, self.expected)
        if problem:
            return problem
        fields = body.get("fields")
        if not _reported_fields(fields):
            return 400, {"error": "fields must be proxy (a short string) and/or nodeports (port -> short string)"}
        with self.changed:
            self.reports.setdefault(body["rank"], {}).update(fields)
        return 200, {"reported": body["rank"]}

    def node_reports(self) -> dict[str, dict[str, Any]]:
        """Host name -> the fields its agent reported."""
        with self.changed:
            return {self.expected[r]: dict(f) for r, f in self.reports.items()}

    def lost_hosts(self) -> dict[str, str]:
        """Host name -> why, for every member that reported its node lost."""
        with self.changed:
            return {self.expected[r]: why for r, why in self.lost.items()}

    def membership(self, rank: int | None) -> tuple[int, dict[str, Any]]:
        with self.changed:
            if self.closed:
                return 410, {"error": f"the rendezvous is closed: {self.closed}"}
            complete = self._complete()
            if complete and rank is not None and rank in self.members:
                self.acknowledged.add(rank)
                self.changed.notify_all()
            return 200, {"complete": complete, "expected": len(self.expected),
                         "members": [self.members[r] for r in sorted(self.members)]}

    def missing(self) -> list[tuple[int, str]]:
        with self.changed:
            return [(r, h) for r, h in enumerate(self.expected) if r not in self.members]

    def unacknowledged(self) -> list[tuple[int, str]]:
        with self.changed:
            return [(r, h) for r, h in enumerate(self.expected) if r not in self.acknowledged]

    def wait(self, timeout: float, coordinator_rank: int = 0) -> bool:
        """Block until everyone registered and every other rank has fetched the full membership."""
        deadline = time.monotonic() + timeout
        with self.changed:
            self.acknowledged.add(coordinator_rank)
            while not (self._complete() and len(self.acknowledged) == len(self.expected)):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(min(left, 1.0))
            return True

    def close(self, reason: str) -> None:
        with self.changed:
            self.closed = reason
            self.changed.notify_all()


def _reported_fields(fields: Any) -> bool:
    if not isinstance(fields, dict) or not fields or set(fields) - set(REPORTED):
        return False
    proxy, ports = fields.get("proxy", ""), fields.get("nodeports", {})
    return (isinstance(proxy, str) and len(proxy) <= 500 and proxy.isprintable() and isinstance(ports, dict)
            and len(ports) <= 4096
            and all(isinstance(p, str) and p.isascii() and p.isdigit() and len(p) <= 5 and isinstance(v, str)
                    and len(v) <= 300 and v.isprintable() for p, v in ports.items()))


def _check_sender(body: Any, expected: Sequence[str]) -> tuple[int, dict[str, Any]] | None:
    """The error reply for a report whose rank and host name do not match a member, or None."""
    rank = body.get("rank") if isinstance(body, dict) else None
    if not isinstance(rank, int) or isinstance(rank, bool) or not 0 <= rank < len(expected):
        return 400, {"error": f"rank must be a whole number from 0 to {len(expected) - 1}"}
    if body.get("hostname") != expected[rank]:
        return 409, {"error": f"rank {rank} belongs to {expected[rank]}, not {body.get('hostname')}"}
    return None


HOSTNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,252}")
MEMBER_FIELDS = {"rank", "hostname", "address", "info"}
INFO_FIELDS = {"mesh_key", "mesh_port"}  # what a node publishes for the mesh; they end up in WireGuard's config


def _is_mesh_key(value: Any) -> bool:
    """A WireGuard public key: 32 bytes in base64, nothing else (no room for a newline or another setting)."""
    if not isinstance(value, str) or len(value) != 44:
        return False
    try:
        return len(base64.b64decode(value, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def _is_port(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


def _check_member(body: Any, size: int) -> str | None:
    """Why a registration is malformed, or None. Every field is checked here, at the server: what passes
    reaches other nodes' mesh configuration."""
    if not isinstance(body, dict):
        return "body must be a JSON object"
    if set(body) - MEMBER_FIELDS:
        return f"unknown fields; a registration has {', '.join(sorted(MEMBER_FIELDS))}"
    rank, host, address = body.get("rank"), body.get("hostname"), body.get("address")
    if not isinstance(rank, int) or isinstance(rank, bool) or not 0 <= rank < size:
        return f"rank must be a whole number from 0 to {size - 1}"
    if not isinstance(host, str) or not HOSTNAME.fullmatch(host):
        return "hostname must be a host name (letters, digits, dots, dashes; at most 253)"
    try:
        ipaddress.ip_address(address)
    except (TypeError, ValueError):
        return "address must be an IP address"
    info = body.get("info", {})
    if not isinstance(info, dict):
        return "info must be an object"
    if set(info) - INFO_FIELDS:
        return f"unknown info fields; info has {', '.join(sorted(INFO_FIELDS))}"
    if "mesh_key" in info and not (info["mesh_key"] == "" or _is_mesh_key(info["mesh_key"])):
        return "mesh_key must be a WireGuard public key (32 bytes, base64)"
    if "mesh_port" in info and not _is_port(info["mesh_port"]):
        return "mesh_port must be a port number (1-65535)"
    return None


def printable(text: Any, limit: int = 500) -> str:
    """Text from the network as it may go into logs and status.json: one line, no control characters."""
    return "".join(c if c.isprintable() else "?" for c in str(text))[:limit]


class _CappedReader:
    """A connection's input, ending (as if the peer had closed) after `limit` bytes: headers and body of
    every request on it together (http.server alone would take 100 header lines of 64 KiB each)."""

    def __init__(self, raw, limit: int) -> None:
        self._raw, self._left = raw, limit

    def _take(self, read, size: int | None) -> bytes:
        if self._left <= 0:
            return b""
        data = read(self._left if size is None or size < 0 else min(size, self._left))
        self._left -= len(data)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        return self._take(self._raw.readline, size)

    def read(self, size: int | None = -1) -> bytes:
        return self._take(self._raw.read, size)

    def close(self) -> None:
        self._raw.close()


class _Handler(BaseHTTPRequestHandler):
    server: RendezvousServer
    protocol_version = "HTTP/1.1"
    timeout = CONNECTION_DEADLINE  # for each read; the server bounds the whole connection

    def setup(self) -> None:
        super().setup()
        self.rfile = _CappedReader(self.rfile, MAX_BODY + (64 << 10))

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug("rendezvous %s: " + fmt, self.client_address[0], *args)

    def _reply(self, status: int, data: dict[str, Any]) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header(AUTH_HEADER, sign(self.server.secret, "REPLY", self.path, body,
                                           nonce=nonce_of(self.headers.get(AUTH_HEADER)) or "0" * 32))
        self.end_headers()
        self.wfile.write(body)

    def _authorised(self, body: bytes) -> bool:
        header = self.headers.get(AUTH_HEADER)
        problem = check(self.server.secret, header, self.command, self.path, body)
        if problem is None and not self.server.first_use(nonce_of(header)):
            problem = "a replayed request"
        if problem is None:
            return True
        log.warning("rendezvous: rejected a request from %s with %s", self.client_address[0], problem)
        self._reply(401, {"error": f"the request has {problem}"})
        return False

    def do_GET(self) -> None:  # noqa: N802
        if not self._authorised(b""):
            return
        path, _, query = self.path.partition("?")
        if path != "/v1/members":
            self._reply(404, {"error": f"no such endpoint {path}"})
            return
        params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
        rank = int(params["rank"]) if params.get("rank", "").isdigit() else None
        self._reply(*self.server.state.membership(rank))

    def _refuse(self, status: int, error: str) -> None:
        log.warning("rendezvous: refused a request from %s: %s", self.client_address[0], error)
        self.close_connection = True
        self._reply(status, {"error": error})

    def do_POST(self) -> None:  # noqa: N802
        text = (self.headers.get("Content-Length") or "0").strip()
        if not (text.isascii() and text.isdigit()):
            self._refuse(400, "Content-Length must be a number of bytes")
            return
        length = int(text)
        if length > MAX_BODY:
            self._refuse(413, "body too large")
            return
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            return
        if not self._authorised(body):
            return
        handlers = {"/v1/register": self.server.state.register, "/v1/lost": self.server.state.report_lost,
                    "/v1/node": self.server.state.report_node}
        if self.path not in handlers:
            self._reply(404, {"error": f"no such endpoint {self.path}"})
            return
        try:
            data = json.loads(body or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError):
            self._refuse(400, "body is not JSON")
            return
        self._reply(*handlers[self.path](data))


class RendezvousServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a burst of connections is accepted (and refused or served), not dropped

    def __init__(self, address: str, port: int, secret: str, state: Rendezvous) -> None:
        self.secret = secret
        self.state = state
        try:
            super().__init__((address, port), _Handler)
        except OSError as exc:
            raise KsiError(f"cannot listen for the rendezvous on {address}:{port}: {exc.strerror}",
                           "choose another rendezvous_port, or 0 to pick a free one") from None
        self._thread = threading.Thread(target=self.serve_forever, name="rendezvous", daemon=True)
        self._open: dict[socket.socket, tuple[str, float]] = {}  # connection -> (peer, opened at)
        self._open_lock = threading.Lock()
        self._seen: dict[str, float] = {}  # nonce of every request accepted within the signature window

    def first_use(self, nonce: str) -> bool:
        """Whether a correctly signed request's nonce is new; remembered as long as its signature is valid."""
        now = time.monotonic()
        with self._open_lock:
            if len(self._seen) > 10_000:
                self._seen = {n: t for n, t in self._seen.items() if now - t < 2 * CLOCK_SKEW}
            if nonce in self._seen:
                return False
            self._seen[nonce] = now
            return True

    def verify_request(self, request, client_address) -> bool:
        peer = client_address[0]
        with self._open_lock:
            from_peer = sum(1 for p, _ in self._open.values() if p == peer)
            if len(self._open) < MAX_CONNECTIONS and from_peer < MAX_CONNECTIONS_PER_PEER:
                self._open[request] = (peer, time.monotonic())
                return True
        log.warning("rendezvous: refused a connection from %s: %d open from it, %d in all", peer, from_peer,
                    len(self._open))
        return False

    def shutdown_request(self, request) -> None:
        with self._open_lock:
            self._open.pop(request, None)
        super().shutdown_request(request)

    def service_actions(self) -> None:
        """Called by serve_forever between polls: cut connections that outlived their deadline (a slow
        sender's handler then sees the end of its input and returns)."""
        expired = time.monotonic() - CONNECTION_DEADLINE
        with self._open_lock:
            late = [(sock, peer) for sock, (peer, opened) in self._open.items() if opened < expired]
            for sock, _ in late:
                del self._open[sock]
        for sock, peer in late:
            log.warning("rendezvous: closed a connection from %s after %g s", peer, CONNECTION_DEADLINE)
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    @property
    def port(self) -> int:
        return self.server_address[1]

    def start(self) -> RendezvousServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class RendezvousError(KsiError):
    pass


class RendezvousClient:
    def __init__(self, address: str, port: int, secret: str, request_timeout: float = 10) -> None:
        self.base = f"http://{address}:{port}"
        self.where = f"{address}:{port}"
        self.secret = secret
        self.request_timeout = request_timeout

    def request(self, method: str, path: str, data: Any = None) -> tuple[int, dict[str, Any]]:
        """One signed request; returns (status, body). Raises OSError when the server is unreachable."""
        body = b"" if data is None else json.dumps(data).encode()
        req = urllib.request.Request(self.base + path, data=body if method == "POST" else None, method=method)
        header = sign(self.secret, method, path, body)
        req.add_header(AUTH_HEADER, header)
        if method == "POST":
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.request_timeout) as resp:
                status, raw, answer = resp.status, resp.read(), resp.headers.get(AUTH_HEADER)
        except urllib.error.HTTPError as err:
            status, raw, answer = err.code, err.read(), err.headers.get(AUTH_HEADER)
        reply = json.loads(raw or b"{}") if raw.startswith(b"{") else {}
        problem = check(self.secret, answer, "REPLY", path, raw, nonce=nonce_of(header))
        if problem:
            if status == 401 and "clock" in str(reply.get("error", "")):
                raise RendezvousError(f"the rendezvous at {self.where} refused this host's requests: {reply['error']}",
                                      "synchronise the hosts' clocks (NTP), then start the job again")
            raise RendezvousError(f"the rendezvous at {self.where} answered with {problem}",
                                  "another process answers on that port; start the job again")
        return status, reply

    def _until(self, deadline: float, attempt: Callable[[], Any]) -> Any:
        last = "no answer"
        while True:
            try:
                result = attempt()
                if result is not None:
                    return result
                last = "membership incomplete"
            except OSError as exc:
                last = str(getattr(exc, "reason", None) or exc)
            if time.monotonic() >= deadline:
                raise RendezvousError(f"no answer from the rendezvous at {self.where} ({last})")
            time.sleep(0.25)

    def register(self, member: dict[str, Any], deadline: float) -> None:
        def attempt():
            status, body = self.request("POST", "/v1/register", member)
            if status != 200:
                raise RendezvousError(f"rendezvous at {self.where} refused registration: {body.get('error')}")
            return body

        self._until(deadline, attempt)

    def wait_members(self, rank: int, deadline: float) -> list[dict[str, Any]]:
        def attempt():
            status, body = self.request("GET", f"/v1/members?rank={rank}")
            if status != 200:
                raise RendezvousError(f"rendezvous at {self.where}: {body.get('error')}")
            return body["members"] if body["complete"] else None

        return self._until(deadline, attempt)

    def report_lost(self, rank: int, hostname: str, reason: str) -> None:
        """Tell rank 0 this node is gone; one try (the caller logs a failure and goes on)."""
        status, body = self.request("POST", "/v1/lost", {"rank": rank, "hostname": hostname, "reason": reason})
        if status != 200:
            raise RendezvousError(f"rendezvous at {self.where} refused the loss report: {body.get('error')}")

    def report_node(self, rank: int, hostname: str, fields: dict[str, Any]) -> None:
        """Tell rank 0 something status.json shows about this node; one try."""
        status, body = self.request("POST", "/v1/node", {"rank": rank, "hostname": hostname, "fields": fields})
        if status != 200:
            raise RendezvousError(f"rendezvous at {self.where} refused the node report: {body.get('error')}")
