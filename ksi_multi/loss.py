"""When is a worker node lost? Pure bookkeeping over what rank 0 sees on each heartbeat."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

LOST_AFTER = 60.0  # seconds a node may stay NotReady before rank 0 gives it up
OUT_OF_SERVICE = {"key": "node.kubernetes.io/out-of-service", "value": "nodeshutdown", "effect": "NoExecute"}


@dataclass
class LossTracker:
    """A worker is lost when its own agent reports its node dead, or when Kubernetes has seen it NotReady
    for `lost_after` seconds (a host that died cannot report). Once lost, it stays lost: the node
    container does not come back within a job."""

    workers: list[str]
    lost_after: float = LOST_AFTER
    not_ready_since: dict[str, float] = field(default_factory=dict)
    lost: dict[str, str] = field(default_factory=dict)

    def observe(self, now: float, ready: Iterable[str] | None, reported: dict[str, str],
                silent: dict[str, float] | None = None) -> dict[str, str]:
        """Record one look (`ready`: names Kubernetes calls Ready, None when the API did not answer), the
        agents' own reports, and agents that stopped reporting (seconds since their last heartbeat); return
        the workers newly lost, with why."""
        new: dict[str, str] = {}
        for name, why in reported.items():
            if name in self.workers and name not in self.lost:
                new[name] = f"its agent reports: {why}"
        for name, age in (silent or {}).items():
            if name in self.workers and name not in self.lost and name not in new:
                new[name] = f"its agent stopped reporting {age:.0f} s ago (killed?)"
        if ready is not None:
            ready = set(ready)
            for name in self.workers:
                if name in ready:
                    self.not_ready_since.pop(name, None)
                    continue
                since = self.not_ready_since.setdefault(name, now)
                if now - since >= self.lost_after and name not in self.lost and name not in new:
                    new[name] = f"NotReady in Kubernetes for {now - since:.0f} s"
        self.lost.update(new)
        return new


def with_out_of_service(taints: list[dict] | None) -> list[dict]:
    """The node's taints plus the out-of-service taint, which makes Kubernetes delete its pods at once so
    their controllers start them on the survivors (non-graceful node shutdown)."""
    taints = [t for t in (taints or []) if t.get("key") != OUT_OF_SERVICE["key"]]
    return [*taints, dict(OUT_OF_SERVICE)]
