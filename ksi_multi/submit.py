"""`ksi-multi submit`: build the sbatch command line for the packaged batch script and submit it."""

from __future__ import annotations

from pathlib import Path

from ksi_multi import resources
from ksi_multi.config import KEYS, Config, as_flag
from ksi_multi.errors import KsiError
from ksi_multi.run import run


def batch_script() -> Path:
    """The batch script the package carries (`sbatch -N 4 $(ksi-multi batch-script --path)`)."""
    return resources.path("templates/ksi-multi.sbatch")


def agent_args(config: Config, until: str | None) -> list[str]:
    """Agent flags for every setting that differs from the default, so the agents see the same config."""
    args = []
    default = Config()
    for name in KEYS:
        value = getattr(config, name)
        if value != getattr(default, name):
            args += [f"--{name.replace('_', '-')}", as_flag(value)]
    if until:
        args += ["--until", until]
    return args


def sbatch_command(config: Config, nodes: int, time_limit: str | None = None, partition: str | None = None,
                   account: str | None = None, until: str | None = None, workload: list[str] | None = None) -> list[str]:
    jobs = config.jobs_path()
    cmd = ["sbatch", "--parsable", f"--nodes={nodes}", f"--output={jobs}/slurm-%j.out"]
    if time_limit:
        cmd.append(f"--time={time_limit}")
    if partition:
        cmd.append(f"--partition={partition}")
    if account:
        cmd.append(f"--account={account}")
    if workload and until:
        raise KsiError("a workload needs the whole cluster; it cannot be combined with --until",
                       "drop --until, or drop the workload")
    return cmd + [str(batch_script()), *agent_args(config, until), *(["--", *workload] if workload else [])]


def submit(config: Config, nodes: int, **options) -> str:
    config.jobs_path().mkdir(mode=0o700, parents=True, exist_ok=True)
    out = run(sbatch_command(config, nodes, **options), timeout=60,
              fix="check the Slurm options (partition, account, time) and that sbatch works here").stdout
    job_id = out.strip().split(";")[0]
    if not job_id.isdigit():
        raise KsiError(f"sbatch answered {out.strip()!r}, not a job id")
    return job_id
