"""A node's side of the coordination channel: signed requests to rank 0's rendezvous (RendezvousClient), the
same methods on rank 0 itself (LocalChannel), the watch for an abort, and sealing of secret values."""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from ksi_multi.errors import Aborted, KsiError
from ksi_multi.rendezvous import AUTH_HEADER, Rendezvous, RendezvousError, check, nonce_of, printable, sign

# Rank 0 decides when a barrier has failed and names who is missing; a node gives it this long to say so.
BARRIER_GRACE = 15.0


def seal(secret: str, data: Any) -> str:
    """JSON encrypted and authenticated with a key derived from the job secret, for values that must not cross
    the network readable (the join token): AES-256-GCM, base64."""
    nonce = secrets.token_bytes(12)
    return base64.b64encode(nonce + _sealing(secret).encrypt(nonce, json.dumps(data).encode(), None)).decode()


def unseal(secret: str, blob: str) -> Any:
    from cryptography.exceptions import InvalidTag

    try:
        raw = base64.b64decode(blob, validate=True)
        return json.loads(_sealing(secret).decrypt(raw[:12], raw[12:], None))
    except (binascii.Error, ValueError, InvalidTag):
        raise KsiError("sealed data from the rendezvous does not open with this job's secret",
                       "another job's coordinator answers, or the job directory changed: start the job again") from None


def _sealing(secret: str):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"ksi-multi sealed values").derive(
        secret.encode())
    return AESGCM(key)


class RendezvousClient:
    """A node's side of the coordination channel: signed requests to rank 0's rendezvous."""

    def __init__(self, address: str, port: int, secret: str, rank: int = 0, hostname: str = "",
                 request_timeout: float = 10) -> None:
        self.base = f"http://{address}:{port}"
        self.where = f"{address}:{port}"
        self.secret = secret
        self.rank, self.hostname = rank, hostname
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
        if status == 410 and reply.get("aborted"):
            raise Aborted(f"the job was aborted: {printable(reply['aborted'])}")
        return status, reply

    def _until(self, deadline: float, attempt: Callable[[], Any], waiting: str) -> Any:
        last = "no answer"
        while True:
            try:
                result = attempt()
                if result is not None:
                    return result
                last = waiting
            except OSError as exc:
                last = str(getattr(exc, "reason", None) or exc)
            if time.monotonic() >= deadline:
                raise RendezvousError(f"no answer from the rendezvous at {self.where} ({last})")
            time.sleep(0.25)

    def put(self, key: str, value: Any, deadline: float) -> None:
        """Put this node's value for a key, trying until the deadline while rank 0 is not reachable yet."""
        def attempt():
            status, body = self.request("POST", "/v1/put", {"rank": self.rank, "hostname": self.hostname,
                                                             "key": key, "value": value})
            if status != 200:
                raise RendezvousError(f"rendezvous at {self.where} refused {key}: {body.get('error')}")
            return body

        self._until(deadline, attempt, "")

    def get(self, key: str) -> tuple[dict[int, Any], bool]:
        """Every rank's value for a key so far, and whether every rank has put it; one try."""
        status, body = self.request("GET", f"/v1/get?key={key}")
        if status != 200:
            raise RendezvousError(f"rendezvous at {self.where}: {body.get('error')}")
        return {int(r): v for r, v in body["values"].items()}, body["complete"]

    def wait_all(self, key: str, deadline: float) -> dict[int, Any]:
        """The barrier: every rank's value for a key, once every rank has put it."""
        def attempt():
            values, complete = self.get(key)
            return values if complete else None

        return self._until(deadline + BARRIER_GRACE, attempt, f"not every node has published {key} yet")

    def wait_for(self, key: str, rank: int, deadline: float) -> Any:
        """One rank's value for a key, once it has put it."""
        def attempt():
            return self.get(key)[0].get(rank)

        return self._until(deadline, attempt, f"rank {rank} has not published {key} yet")

    def aborted(self) -> str | None:
        """Why the job was aborted, or None; one try."""
        status, body = self.request("GET", "/v1/state")
        return printable(body["aborted"]) if status == 200 and body.get("aborted") else None

    def abort(self, reason: str) -> None:
        """Tell rank 0 this node failed, so that every node stops at once; one try."""
        status, body = self.request("POST", "/v1/abort", {"rank": self.rank, "hostname": self.hostname,
                                                           "reason": printable(reason)})
        if status != 200:
            raise RendezvousError(f"rendezvous at {self.where} refused the abort: {body.get('error')}")


class LocalChannel:
    """Rank 0's side of the same channel: the store itself, with the client's methods."""

    def __init__(self, state: Rendezvous, rank: int = 0) -> None:
        self.state, self.rank = state, rank
        self.hostname = state.expected[rank]

    def put(self, key: str, value: Any, deadline: float) -> None:
        self.state.publish(key, value, self.rank)

    def get(self, key: str) -> tuple[dict[int, Any], bool]:
        if self.state.closed:
            raise Aborted(f"the job was aborted: {self.state.closed}")
        return self.state.of(key), not self.state.missing(key)

    def wait_all(self, key: str, deadline: float) -> dict[int, Any]:
        if not self.state.wait(key, max(0.0, deadline - time.monotonic())):
            if self.state.closed:
                raise Aborted(f"the job was aborted: {self.state.closed}")
            names = ", ".join(f"rank {r} ({h})" for r, h in self.state.missing(key))
            raise RendezvousError(f"{names} published no {key}")
        return self.state.of(key)

    def wait_for(self, key: str, rank: int, deadline: float) -> Any:
        while (value := self.state.of(key).get(rank)) is None:
            if self.state.closed:
                raise Aborted(f"the job was aborted: {self.state.closed}")
            if time.monotonic() > deadline:
                raise RendezvousError(f"rank {rank} published no {key}")
            time.sleep(0.2)
        return value

    def aborted(self) -> str | None:
        return self.state.closed

    def abort(self, reason: str) -> None:
        self.state.close(f"{self.hostname} failed in {reason}")


class AbortWatch:
    """A worker's thread that asks rank 0 every few seconds whether the job was aborted, so that a failure
    anywhere stops every node at once, whatever it is doing. Rank 0 gone quiet counts as an abort too."""

    @classmethod
    def for_nodes(cls, nodes: int, client: RendezvousClient, on_abort: Callable[[str], None]) -> AbortWatch:
        """Rank 0 answers every worker: with many, each asks less often (about 8 questions a second in all),
        and rank 0's silence counts only after longer (a host booting dozens of nodes answers late)."""
        interval = max(2.0, nodes / 8)
        return cls(client, on_abort, interval=interval, patience=5 + nodes // 16)

    def __init__(self, client: RendezvousClient, on_abort: Callable[[str], None], interval: float = 2.0,
                 patience: int = 5) -> None:
        self.client, self.on_abort = client, on_abort
        self.interval, self.patience = interval, patience
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="abort-watch", daemon=True)

    def start(self) -> AbortWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        failures = 0
        while not self._stop.wait(self.interval):
            try:
                reason = self.client.aborted()
                failures = 0
            except Aborted as exc:
                reason = exc.cause
            except (OSError, KsiError) as exc:
                failures += 1
                reason = None
                if failures >= self.patience:
                    reason = f"rank 0's rendezvous at {self.client.where} stopped answering ({exc})"
            if reason and not self._stop.is_set():
                self.on_abort(reason)
                return
