"""`ksi-multi load`: image archives into every node of a running job, in parallel, reported per node.

The login side checks every archive first (nothing is imported when one is not an image archive), then
one srun step on the job's nodes runs `ksi-multi import-images` on each, which imports into its own node.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from ksi_multi import imageload, node, status
from ksi_multi.config import Config
from ksi_multi.errors import KsiError
from ksi_multi.jobhost import job_host
from ksi_multi.run import run
from ksi_multi.submit import agent_args


def load(cfg: Config, job_id: str | None, archives: list[Path], echo: Callable[[str], None] = print,
         timeout: float = 3600) -> dict[str, imageload.NodeResult]:
    infos = [imageload.inspect(path) for path in archives]
    for info in infos:
        for warning in imageload.name_warnings(info):
            echo(f"warning: {warning}")
    job = status.find_job(cfg.jobs_path(), job_id)
    data = status.read(job)
    if data.get("state") != "ready":
        raise KsiError(f"job {job.job_id} is {data.get('state')} (phase {data.get('phase')}); "
                       "images can be loaded into a running cluster only",
                       f"wait for it (ksi-multi wait-ready --job {job.job_id}), or use the `images` key to "
                       "import them at boot")
    hosts = [n["name"] for n in data.get("nodes", []) if not n.get("lost")]
    names = ", ".join(n for info in infos for n in info.names) or "unnamed image(s)"
    echo(f"loading {names} into {len(hosts)} node(s) of job {job.job_id} ...")
    flags = agent_args(cfg, None)  # the nodes must find this job's store where its agents put it
    started = time.monotonic()
    proc = run(["srun", f"--jobid={job.job_id}", "--overlap", f"--nodes={len(hosts)}", "--ntasks-per-node=1",
                f"--nodelist={','.join(hosts)}", "--kill-on-bad-exit=0", "--quiet",
                "ksi-multi", "import-images", f"--job={job.job_id}", *flags, *map(str, archives)],
               timeout=timeout, check=False, stdin=subprocess.DEVNULL)  # srun would pass our stdin to its tasks
    results = imageload.parse_results(proc.stdout)
    silent = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"srun exited with {proc.returncode}"
    failed = []
    for host in hosts:
        result = results.get(host)
        if result is None:
            failed.append(host)
            echo(f"  {host}: no answer ({silent})")
        elif result.error:
            failed.append(host)
            echo(f"  {host}: failed after {result.seconds:.1f} s: {result.error}")
        else:
            echo(f"  {host}: {' '.join(result.images) or 'nothing new'} ({result.seconds:.1f} s)")
    if failed:
        raise KsiError(f"load failed on {len(failed)} of {len(hosts)} node(s): {', '.join(failed)}",
                       "see the reasons above; archives must be on storage every node reads (not /tmp)")
    echo(f"loaded into {len(hosts)} node(s) in {time.monotonic() - started:.1f} s")
    return results


def import_here(cfg: Config, job_id: str, archives: list[Path]) -> imageload.NodeResult:
    """This host's part: import into the job's node container running here."""
    host = socket.gethostname().split(".")[0]
    home = job_host(cfg, job_id).podman
    name = node.container_name(job_id, host)
    if node.state(home, name) != "running":
        return imageload.NodeResult(host, error=f"job {job_id} has no running node on {host}")
    started = time.monotonic()
    try:
        names = imageload.import_archives(home, name, archives)
    except KsiError as exc:
        return imageload.NodeResult(host, seconds=time.monotonic() - started, error=exc.cause)
    return imageload.NodeResult(host, names, time.monotonic() - started)
