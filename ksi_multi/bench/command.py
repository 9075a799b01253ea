"""`ksi-multi bench --job ID`: checks, the run, and what it writes (table, JSON, markdown, PNG)."""

from __future__ import annotations

import json
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ksi_multi import config as configuration
from ksi_multi import status as status_mod
from ksi_multi.bench import report
from ksi_multi.bench.measure import Bench, Options
from ksi_multi.config import Config
from ksi_multi.errors import KsiError, Terminated
from ksi_multi.image import index
from ksi_multi.image.build import TOOLBOX_TAG
from ksi_multi.jobdir import JobDir, write_private


def ready_nodes(job_id: str, data: dict[str, Any]) -> list[dict[str, Any]]:
    """The job's nodes, in rank order, once the job is Ready; an error naming its state otherwise."""
    if data.get("state") != "ready":
        where = f" (phase {data['phase']})" if data.get("phase") else ""
        raise KsiError(f"job {job_id} is not Ready: its state is {data.get('state')}{where}",
                       f"bench a Ready job: ksi-multi wait-ready --job {job_id}, then run this again")
    nodes = [n for n in sorted(data.get("nodes") or [], key=lambda n: n["rank"]) if n.get("ready") and not n.get("lost")]
    if not nodes:
        raise KsiError(f"job {job_id} has no Ready node", f"see ksi-multi status --job {job_id}")
    return nodes


def host_iperf3(image_dir: Path) -> Path:
    path = index.helper_paths(image_dir).get("iperf3")
    if path is None or not path.is_file():
        raise KsiError(f"no iperf3 for the hosts in {image_dir}",
                       "build the images again with this version: ksi-multi image build")
    return path


def job_config(job: JobDir, cfg: Config) -> Config:
    """The configuration the job itself started with (its config.yaml), else the one given."""
    return configuration.load(job.config_file, env={}) if job.config_file.is_file() else cfg


def bench(cfg: Config, job_id: str | None, options: Options, compare: Path | None, out_dir: Path | None,
          echo: Callable[[str], None], image_dir: Path | None = None) -> dict[str, Any]:
    """Run the benchmark on the job; `image_dir` given: its host iperf3 instead of the job's."""
    job = status_mod.find_job(cfg.jobs_path(), job_id)
    earlier = report.load(compare) if compare else None
    nodes = ready_nodes(job.job_id, status_mod.read(job))
    started_with = job_config(job, cfg)
    image_dir = (image_dir or started_with.image_dir).expanduser()
    iperf3 = host_iperf3(image_dir)
    toolbox = ((index.read(image_dir) or {}).get("toolbox") or {}).get("tag", TOOLBOX_TAG)
    out = Path(out_dir).expanduser() if out_dir else job.path
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    logs = Path(tempfile.mkdtemp(prefix=f"bench-{stamp}-logs-", dir=out))  # 0700, never an existing one
    run = Bench(job.job_id, nodes, job.kubeconfig_file, iperf3, toolbox, logs, options, echo,
                federated=started_with.federation == "liqo")
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        result = run.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    if any(r["errors"] for r in result["routes"]):
        echo(f"bench: the servers' logs are in {logs}")
    else:
        shutil.rmtree(logs, ignore_errors=True)
    for line in report.table(result):
        echo(line)
    if earlier:
        echo("")
        for line in report.compare(earlier, result):
            echo(line)
    base = out / f"bench-{stamp}"
    write_private(base.with_suffix(".json"), json.dumps(result, indent=1) + "\n")
    write_private(base.with_suffix(".md"), report.markdown(result))
    wrote = [base.with_suffix(".json"), base.with_suffix(".md")]
    if report.plot(result, base.with_suffix(".png")):
        wrote.append(base.with_suffix(".png"))
    else:
        echo("bench: no plot: matplotlib is not installed (pip install matplotlib)")
    echo("")
    echo("wrote " + ", ".join(map(str, wrote)))
    return result


def _stop(signum: int, _frame: Any) -> None:
    raise Terminated(signal.Signals(signum).name)
