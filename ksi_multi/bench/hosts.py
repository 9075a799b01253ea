"""Commands on a job's hosts themselves, as job steps of the user's own job (`srun --jobid ID --overlap`):
the baseline every path through the cluster is compared with."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ksi_multi.run import log_tail, run, spawn, stop


class JobHosts:
    def __init__(self, job_id: str, logs: Path) -> None:
        self.job_id = job_id
        self.logs = logs
        self.servers: list[subprocess.Popen] = []

    def argv(self, host: str, cmd: list[str]) -> list[str]:
        return ["srun", f"--jobid={self.job_id}", "--overlap", "--nodes=1", "--ntasks=1", f"--nodelist={host}",
                "--quiet", *cmd]

    def run(self, host: str, cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        """Run on `host`; the result whatever its exit code (the caller reads the tool's own error)."""
        return run(self.argv(host, cmd), timeout=timeout, check=False,
                   fix=f"check that job {self.job_id} still runs (squeue -j {self.job_id}) and that srun works here")

    def serve(self, host: str, cmd: list[str], name: str) -> subprocess.Popen:
        """A server on `host` for as long as this run lasts (its output in the run's log directory)."""
        proc = spawn(self.argv(host, cmd), self.logs / f"{name}.log")
        self.servers.append(proc)
        return proc

    def log_of(self, name: str) -> str:
        return log_tail(self.logs / f"{name}.log")

    def stop(self) -> None:
        for proc in self.servers:
            stop(proc)
        self.servers.clear()

