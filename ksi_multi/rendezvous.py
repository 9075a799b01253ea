"""Rank 0's rendezvous: the job's coordination channel, an authenticated HTTP key-value store with barriers
(the store, its validation and its server; a node's side is ksi_multi.channel).

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
REPORTED = ("proxy", "mesh_helper", "nodeports")  # node fields an agent may report about its own node


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


# What a node may put; rank 0 alone publishes COORDINATOR_KEYS.
KEYS = ("member", "mesh", "lost", "node", "beat", "done", "federated")
COORDINATOR_KEYS = ("join", "ready")


class Rendezvous:
    """The job's coordination state on rank 0: a key-value store with one value per rank and key, and
    barriers (every rank has put KEY). It carries membership, the mesh's keys and ports, the join material
    (sealed), loss reports and node reports. Closing it with a reason is the abort every node sees."""

    def __init__(self, expected: Sequence[str]) -> None:
        self.expected = list(expected)
        self.values: dict[str, dict[int, Any]] = {}
        self.when: dict[str, dict[int, float]] = {}  # key -> rank -> monotonic time of its last put
        self.closed: str | None = None
        self.changed = threading.Condition()
        self.on_change: Callable[[str], None] | None = None  # called with the key after every put
        self.on_abort: Callable[[str], None] | None = None  # called when a node aborts the job

    def _complete(self, key: str) -> bool:
        return len(self.values.get(key, {})) == len(self.expected)

    def _closed_reply(self) -> tuple[int, dict[str, Any]]:
        return 410, {"error": f"the job was aborted: {self.closed}", "aborted": self.closed}

    def put(self, body: Any) -> tuple[int, dict[str, Any]]:
        """A node's value for a key: {"rank", "hostname", "key", "value"}; a second put replaces the first."""
        problem = _check_sender(body, self.expected)
        if problem:
            return problem
        if set(body) - {"rank", "hostname", "key", "value"} or body.get("key") not in KEYS:
            return 400, {"error": f"a put has rank, hostname, key ({', '.join(KEYS)}) and value"}
        why = _check_value(body["key"], body.get("value"))
        if why:
            return 400, {"error": f"{body['key']}: {why}"}
        with self.changed:
            if self.closed:
                return self._closed_reply()
            self.values.setdefault(body["key"], {})[body["rank"]] = body["value"]
            self.when.setdefault(body["key"], {})[body["rank"]] = time.monotonic()
            self.changed.notify_all()
        if self.on_change:
            self.on_change(body["key"])
        return 200, {"put": body["key"], "rank": body["rank"]}

    def publish(self, key: str, value: Any, rank: int = 0) -> None:
        """Rank 0's own values (no validation: they do not come from the network)."""
        with self.changed:
            self.values.setdefault(key, {})[rank] = value
            self.changed.notify_all()
        if self.on_change:
            self.on_change(key)

    def get(self, key: str) -> tuple[int, dict[str, Any]]:
        if key not in KEYS + COORDINATOR_KEYS:
            return 404, {"error": f"no such key {printable(key, 40)}"}
        with self.changed:
            if self.closed:
                return self._closed_reply()
            values = self.values.get(key, {})
            return 200, {"values": {str(r): v for r, v in sorted(values.items())}, "complete": self._complete(key),
                         "expected": len(self.expected)}

    def state(self) -> tuple[int, dict[str, Any]]:
        with self.changed:
            return 200, {"aborted": self.closed}

    def abort(self, body: Any) -> tuple[int, dict[str, Any]]:
        """A node failed: the job stops everywhere, with its reason."""
        problem = _check_sender(body, self.expected)
        if problem:
            return problem
        reason = f"{body['hostname']} failed in {printable(body.get('reason') or 'a phase')}"
        first = self.close(reason)
        if first and self.on_abort:
            self.on_abort(reason)
        return 200, {"aborted": self.closed}

    def wait(self, key: str, timeout: float) -> bool:
        """Block until every rank has put `key` (False at the timeout or when closed)."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not self._complete(key):
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    return False
                self.changed.wait(min(left, 1.0))
            return True

    def missing(self, key: str) -> list[tuple[int, str]]:
        with self.changed:
            return [(r, h) for r, h in enumerate(self.expected) if r not in self.values.get(key, {})]

    def of(self, key: str) -> dict[int, Any]:
        with self.changed:
            return dict(self.values.get(key, {}))

    def silent(self, key: str, longer_than: float) -> dict[str, float]:
        """Host name -> seconds since its last put of `key`, for those that put it once and not since."""
        now = time.monotonic()
        with self.changed:
            return {self.expected[r]: now - t for r, t in self.when.get(key, {}).items() if now - t > longer_than}

    def members(self) -> list[dict[str, Any]]:
        """The registered members in rank order, with what they published for the mesh."""
        member, mesh = self.of("member"), self.of("mesh")
        return [{"rank": r, "hostname": self.expected[r], "address": member[r]["address"],
                 "info": dict(mesh.get(r, {}))} for r in sorted(member)]

    def node_reports(self) -> dict[str, dict[str, Any]]:
        """Host name -> the fields its agent reported."""
        return {self.expected[r]: dict(f) for r, f in self.of("node").items()}

    def lost_hosts(self) -> dict[str, str]:
        """Host name -> why, for every member that reported its node lost."""
        return {self.expected[r]: printable(v["reason"]) for r, v in self.of("lost").items()}

    def close(self, reason: str) -> bool:
        """Close with a reason (the first one is kept); whether this call closed it."""
        with self.changed:
            if self.closed:
                return False
            self.closed = reason
            self.changed.notify_all()
            return True


def _reported_fields(fields: Any) -> bool:
    if not isinstance(fields, dict) or not fields or set(fields) - set(REPORTED):
        return False
    proxy, helper, ports = fields.get("proxy", ""), fields.get("mesh_helper", ""), fields.get("nodeports", {})
    return (all(isinstance(t, str) and len(t) <= 500 and t.isprintable() for t in (proxy, helper))
            and isinstance(ports, dict) and len(ports) <= 4096
            and all(isinstance(p, str) and p.isascii() and p.isdigit() and len(p) <= 5 and isinstance(v, str)
                    and len(v) <= 300 and v.isprintable() for p, v in ports.items()))


def _check_sender(body: Any, expected: Sequence[str]) -> tuple[int, dict[str, Any]] | None:
    """The error reply for a message whose rank and host name do not match a member, or None."""
    rank = body.get("rank") if isinstance(body, dict) else None
    if not isinstance(rank, int) or isinstance(rank, bool) or not 0 <= rank < len(expected):
        return 400, {"error": f"rank must be a whole number from 0 to {len(expected) - 1}"}
    host = body.get("hostname")
    if not isinstance(host, str) or not HOSTNAME.fullmatch(host):
        return 400, {"error": "hostname must be a host name (letters, digits, dots, dashes; at most 253)"}
    if host != expected[rank]:
        return 409, {"error": f"rank {rank} belongs to {expected[rank]}, not {host}"}
    return None


HOSTNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,252}")
MESH_FIELDS = {"mesh_key", "mesh_port"}  # what a node publishes for the mesh; they end up in WireGuard's config


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


def _check_value(key: str, value: Any) -> str | None:
    """Why a node's value for a key is malformed, or None. Every field is checked here, at the server: what
    passes reaches other nodes' mesh configuration and status.json."""
    if not isinstance(value, dict):
        return "the value must be an object"
    if key == "member":
        if set(value) != {"address"}:
            return "a member has an address, nothing else"
        try:
            ipaddress.ip_address(value["address"])
        except (TypeError, ValueError):
            return "address must be an IP address"
    elif key == "mesh":
        if set(value) - MESH_FIELDS or "mesh_port" not in value:
            return f"the mesh's value has {', '.join(sorted(MESH_FIELDS))} (mesh_key may be empty or absent)"
        if "mesh_key" in value and not (value["mesh_key"] == "" or _is_mesh_key(value["mesh_key"])):
            return "mesh_key must be a WireGuard public key (32 bytes, base64)"
        if not _is_port(value["mesh_port"]):
            return "mesh_port must be a port number (1-65535)"
    elif key == "lost":
        reason = value.get("reason")
        if set(value) != {"reason"} or not isinstance(reason, str) or len(reason) > 500:
            return "a loss report has a reason (text, at most 500 characters)"
    elif key in ("done", "beat", "federated") and value:
        return f"{key} has an empty value"
    elif key == "node" and not _reported_fields(value):
        return "fields must be proxy, mesh_helper (short strings) and/or nodeports (port -> short string)"
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
        if path == "/v1/state":
            self._reply(*self.server.state.state())
            return
        if path != "/v1/get":
            self._reply(404, {"error": f"no such endpoint {printable(path, 100)}"})
            return
        params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
        self._reply(*self.server.state.get(params.get("key", "")))

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
        handlers = {"/v1/put": self.server.state.put, "/v1/abort": self.server.state.abort}
        if self.path not in handlers:
            self._reply(404, {"error": f"no such endpoint {printable(self.path, 100)}"})
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
