"""status.json: the job's state as a stable contract for people and scripts.

{"job_id", "state": starting|ready|failed|stopped, "phase", "error", "reason" (why it stopped),
 "nodes": [{"name", "host", "rank", "mesh_ip", "mesh_port", "ready", "lost", "proxy", "nodeports": {port: "ok"|why}}],
 "kubeconfig", "server" (the API server's URL), "timings": {phase: seconds}, "nodeports": {port: "namespace/service"},
 "mesh": {peer: {"latest_handshake", "rx_bytes", "tx_bytes"}}, "updated"}
A node's "lost" is null, or why rank 0 gave it up (its node died; the others go on serving); "proxy" is
absent, or what happened to its ksi-proxy (restarts); "nodeports" says which NodePorts listen on its host.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from ksi_multi.errors import KsiError
from ksi_multi.jobdir import JobDir, write_json

STATES = ("starting", "ready", "failed", "stopped")


class StatusFile:
    """Kept by rank 0; every change is written atomically. Several threads change it (the phases, the
    rendezvous, the NodePort follower): each change reads and writes under one lock, so none undoes another."""

    def __init__(self, path: Path, job_id: str) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.data: dict[str, Any] = {"job_id": job_id, "state": "starting", "phase": None, "error": None,
                                     "nodes": [], "kubeconfig": None, "server": None, "timings": {},
                                     "updated": None}

    def update(self, **changes: Any) -> None:
        with self.lock:
            if "state" in changes and changes["state"] not in STATES:
                raise ValueError(f"unknown state {changes['state']}")
            self.data.update(changes)
            self.data["updated"] = time.time()
            write_json(self.path, self.data)

    def update_if_changed(self, **changes: Any) -> None:
        with self.lock:
            if any(self.data.get(k) != v for k, v in changes.items()):
                self.update(**changes)

    def set_members(self, members: list[dict[str, Any]]) -> None:
        with self.lock:
            known = {n["rank"]: n for n in self.data["nodes"]}
            nodes = []
            for m in sorted(members, key=lambda m: m["rank"]):
                node = dict(known.get(m["rank"], {"mesh_ip": None, "ready": False, "lost": None}))
                node.update({"name": m["hostname"], "host": m["address"], "rank": m["rank"]})
                nodes.append(node)
            self.update(nodes=nodes)

    def set_node_fields(self, fields: dict[str, dict[str, Any]]) -> None:
        """Merge new fields into the nodes named (node name -> fields); write only when something differs."""
        with self.lock:
            nodes = [{**n, **fields.get(n["name"], {})} for n in self.data["nodes"]]
            if nodes != self.data["nodes"]:
                self.update(nodes=nodes)

    def timing(self, phase: str, seconds: float) -> None:
        with self.lock:
            self.update(timings={**self.data["timings"], phase: round(seconds, 3)})


def close_unfinished(job: JobDir, agents_rc: int) -> str | None:
    """After every agent has exited: a status still starting or ready was left by an agent that died without
    its teardown (rank 0's, killed): mark the job failed, naming the hosts whose agent never finished."""
    data = job.read_json(job.status_file)
    if data is None or data.get("state") not in ("starting", "ready"):
        return None
    unfinished = sorted(p.name.removeprefix("agent-").removesuffix(".log") for p in job.path.glob("agent-*.log")
                        if "teardown: done" not in p.read_text(errors="replace"))
    who = f"the agent on {', '.join(unfinished)}" if unfinished else "an agent"
    error = f"{who} ended without its teardown (killed?); the agents' step exited with {agents_rc}"
    data.update(state="failed", phase=None, error=error, updated=time.time())
    write_json(job.status_file, data)
    return error


def find_job(jobs_dir: Path, job_id: str | None) -> JobDir:
    """The job named, or the most recently started one."""
    if job_id:
        job = JobDir(jobs_dir, job_id)
        if not job.path.is_dir():
            raise KsiError(f"no job directory for job {job_id} in {jobs_dir}",
                           "check the job id (squeue --me) or jobs_dir")
        return job
    dirs = [p for p in jobs_dir.glob("*") if p.is_dir() and p.name.isdigit()] if jobs_dir.is_dir() else []
    if not dirs:
        raise KsiError(f"no ksi-multi jobs in {jobs_dir}", "submit one: ksi-multi submit -N 2")
    latest = max(dirs, key=lambda p: int(p.name))
    return JobDir(jobs_dir, latest.name)


def kubeconfig_of(jobs_dir: Path, job_id: str | None) -> Path:
    """The kubeconfig of a job (the latest one without an id); an error until the job has one."""
    job = find_job(jobs_dir, job_id)
    data = read(job)
    if not data.get("kubeconfig"):
        raise KsiError(f"job {job.job_id} has no kubeconfig yet (state {data['state']}, phase {data.get('phase')})",
                       f"wait for it: ksi-multi wait-ready --job {job.job_id}")
    return Path(data["kubeconfig"])


def read(job: JobDir) -> dict[str, Any]:
    data = job.read_json(job.status_file)
    if data is None:
        raise KsiError(f"job {job.job_id} has no status yet ({job.status_file})",
                       "the job may still be pending or starting: squeue --me")
    return data


def render(data: dict[str, Any]) -> list[str]:
    lines = [f"job {data['job_id']}: {data['state']}" + (f" (phase {data['phase']})" if data.get("phase") else "")]
    if data.get("error"):
        lines.append(f"error: {data['error']}")
    if data.get("reason"):
        lines.append(f"stopped: {data['reason']}")
    if data["nodes"]:
        lines.append(f"{'RANK':<5} {'NAME':<16} {'HOST':<16} {'MESH IP':<16} READY")
        for n in data["nodes"]:
            ready = f"LOST: {n['lost']}" if n.get("lost") else "yes" if n.get("ready") else "no"
            lines.append(f"{n['rank']:<5} {n['name']:<16} {n['host']:<16} {n.get('mesh_ip') or '-':<16} {ready}")
            if n.get("proxy"):
                lines.append(f"      node proxy on {n['name']}: {n['proxy']}")
            if n.get("mesh_helper"):
                lines.append(f"      mesh helper on {n['name']}: {n['mesh_helper']}")
    lines += _nodeports(data)
    for cluster, peering in sorted((data.get("peerings") or {}).items()):
        details = ", ".join(f"{k} {v}" for k, v in peering.items() if k not in ("state", "role"))
        lines.append(f"peering {cluster} ({peering.get('role', '?')}): {peering.get('state', '?')}"
                     + (f" [{details}]" if details else ""))
    if data.get("kubeconfig"):
        lines.append(f"kubeconfig: {data['kubeconfig']}" + (f" (API server {data['server']})" if data.get("server")
                                                             else ""))
    if data["timings"]:
        lines.append("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in data["timings"].items()))
    return lines


def _nodeports(data: dict[str, Any]) -> list[str]:
    """One line per NodePort: its Service and the hosts it listens on (or why not)."""
    lines = []
    for port, service in (data.get("nodeports") or {}).items():
        ok = [n["host"] for n in data["nodes"] if (n.get("nodeports") or {}).get(port) == "ok"]
        bad = [f"{n['name']}: {n['nodeports'][port]}" for n in data["nodes"]
               if (n.get("nodeports") or {}).get(port) not in (None, "ok")]
        lines.append(f"nodeport {port} ({service}): " + (f"on {', '.join(ok)}" if ok else "on no host yet")
                     + (f"; NOT on {'; '.join(bad)}" if bad else ""))
    return lines
