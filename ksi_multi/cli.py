"""Command-line entry point: every operational step is a subcommand a user can run alone."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sys
from pathlib import Path

import click

from ksi_multi import __version__
from ksi_multi import config as configuration
from ksi_multi.errors import Aborted, KsiError, Terminated

log = logging.getLogger("ksi_multi")

LOG_FORMAT = "%(asctime)s {who} %(levelname)s %(message)s"


def setup_logging(level: str, who: str, file: Path | None = None) -> None:
    fmt = logging.Formatter(LOG_FORMAT.format(who=who), "%H:%M:%S")
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(level.upper())
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if file is not None:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        handlers.append(logging.StreamHandler(os.fdopen(fd, "a", buffering=1)))
    for h in handlers:
        h.setFormatter(fmt)
        root.addHandler(h)
    logging.getLogger("urllib3").setLevel(logging.ERROR)  # the API client's own retries are not news
    # At debug the API client logs whole response bodies: Secrets and join tokens among them.
    logging.getLogger("kubernetes").setLevel(max(root.level, logging.INFO))


def friendly_errors(fn):
    """Turn a KsiError into one clear message on stderr and its exit code."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except KsiError as exc:
            click.echo(f"ksi-multi: error: {exc}", err=True)
            sys.exit(exc.exit_code)
    return wrapper


def config_options(fn):
    """--config plus one flag per configuration key (flags win over KSI_* and the file)."""
    for name, f in reversed(list(configuration.KEYS.items())):
        fn = click.option(f"--{name.replace('_', '-')}", name, default=None, help=f.metadata["help"])(fn)
    return click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
                        help="YAML configuration file (default ~/.ksi-multi/config.yaml, or $KSI_CONFIG)")(fn)


def load_config(kwargs: dict) -> configuration.Config:
    flags = {k: kwargs.pop(k) for k in list(kwargs) if k in configuration.KEYS}
    return configuration.load(kwargs.pop("config_file", None), flags=flags)


def _print_version(ctx: click.Context, _param, value: bool) -> None:
    """The version, and which Kubernetes and image ids the configured image_dir holds."""
    if not value or ctx.resilient_parsing:
        return
    from ksi_multi.image import index

    click.echo(f"ksi-multi, version {__version__}")
    try:
        image_dir = configuration.load().image_dir.expanduser()
    except KsiError as exc:
        click.echo(f"images: unknown ({exc.cause})")
    else:
        for line in index.describe(image_dir):
            click.echo(line)
    ctx.exit()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show the version and the images in image_dir, and exit.")
def main() -> None:
    """A multi-node Kubernetes cluster inside a Slurm job, without root."""


@main.command()
@click.option("--until", "until", default=None, metavar="PHASE",
              help="stop after this phase: doctor, rendezvous, node, mesh, cluster, ready, wait")
@config_options
@friendly_errors
def agent(until: str | None, **kwargs) -> None:
    """Run this host's part of the job (started by srun, one per node)."""
    from ksi_multi import agent as agent_mod
    from ksi_multi import slurm
    from ksi_multi.jobdir import JobDir
    from ksi_multi.status import StatusFile

    cfg = load_config(kwargs)
    ctx_slurm = slurm.from_env()
    phases = agent_mod.plan(until)
    job = JobDir(cfg.jobs_path(), ctx_slurm.job_id)
    job.create()
    setup_logging(cfg.log_level, f"{ctx_slurm.hostname}[{ctx_slurm.rank}]", job.log_file(ctx_slurm.hostname))
    if ctx_slurm.is_coordinator and not job.secret_file.exists():
        job.prepare()
    ctx = agent_mod.AgentContext(
        config=cfg, slurm=ctx_slurm, job=job, address=slurm.host_address(ctx_slurm.hostname),
        cleanup=contextlib.ExitStack(), kubernetes="cluster" in phases,
        status=StatusFile(job.status_file, ctx_slurm.job_id) if ctx_slurm.is_coordinator else None)
    log.info("agent %s: job %s, rank %d of %d, address %s, phases %s", __version__, ctx_slurm.job_id,
             ctx_slurm.rank, ctx_slurm.node_count, ctx.address, " > ".join(phases))
    _start_reaper(cfg, ctx_slurm.job_id, job.log_file(ctx_slurm.hostname))
    try:
        agent_mod.run(ctx, phases)
    except Terminated:
        sys.exit(Terminated.exit_code)
    except (KsiError, Aborted) as exc:
        log.error("%s", exc)
        click.echo(f"ksi-multi: error: {exc}", err=True)
        sys.exit(exc.exit_code)


def _start_reaper(cfg: configuration.Config, job_id: str, log_file: Path) -> None:
    """The agent's reaper (`ksi-multi reap`): a process of its own session that cleans this host up once
    the agent has exited, even when it was killed before its teardown."""
    import subprocess

    from ksi_multi.submit import agent_args

    with open(log_file, "ab") as out:
        subprocess.Popen([sys.executable, "-m", "ksi_multi", "reap", "--job", job_id, "--agent-pid", str(os.getpid()),
                          *agent_args(cfg, None)], stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                         start_new_session=True)


def this_job(job_id: str | None) -> str:
    """The job named, or the Slurm job this runs in."""
    job_id = job_id or os.environ.get("SLURM_JOB_ID")
    if not job_id:
        raise KsiError("no job id: pass --job or run inside a Slurm job")
    return job_id


@main.command()
@click.option("--job", "job_id", default=None, help="job id (default: $SLURM_JOB_ID)")
@click.option("--until", "until", default=None, metavar="PHASE", help="checked here; the agents stop after it")
@config_options
@friendly_errors
def prepare(job_id: str | None, until: str | None, **kwargs) -> None:
    """Create the job directory, a fresh per-job secret and the job's configuration (config.yaml: the file,
    KSI_* and the agent's flags, merged once) that every later step of the batch script reads with --config.
    The batch script runs this once, with the agent's arguments."""
    import yaml

    from ksi_multi import agent as agent_mod
    from ksi_multi.jobdir import JobDir, write_private

    cfg = load_config(kwargs)
    agent_mod.plan(until)
    _check_fits(cfg, int(os.environ.get("SLURM_JOB_NUM_NODES", "1")))
    job = JobDir(cfg.jobs_path(), this_job(job_id))
    job.prepare()
    write_private(job.config_file, yaml.safe_dump(configuration.as_data(cfg), sort_keys=True))
    click.echo(str(job.path))


def _check_fits(cfg: configuration.Config, nodes: int) -> None:
    from ksi_multi.errors import ConfigError
    from ksi_multi.ranges import Ranges

    why = Ranges.of(cfg).too_small_for(nodes)
    if why:
        raise ConfigError(f"config: {why}", "give pod_subnet or mesh_subnet a shorter prefix, or use fewer nodes")
    if cfg.federation == "liqo":
        from ksi_multi import federation

        federation.LiqoTools.find(cfg.image_dir.expanduser())
        federation.cluster_ranges(nodes - 1, Ranges.of(cfg))


@main.command()
@click.option("--job", "job_id", default=None, help="job id (default: the latest job)")
@click.option("--json", "as_json", is_flag=True, help="print status.json as it is (a stable contract)")
@config_options
@friendly_errors
def status(job_id: str | None, as_json: bool, **kwargs) -> None:
    """Show a job's state, nodes, timings and kubeconfig path."""
    from ksi_multi import status as status_mod

    cfg = load_config(kwargs)
    data = status_mod.read(status_mod.find_job(cfg.jobs_path(), job_id))
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        for line in status_mod.render(data):
            click.echo(line)


@main.command()
@click.option("--job", "job_id", default=None, help="job id (default: the latest job)")
@click.option("--seconds", type=click.IntRange(1, 600), default=5, show_default=True, help="length of each iperf3 run")
@click.option("--streams", default="4", show_default=True, metavar="N[,N...]",
              help="parallel TCP streams of the multi-stream run; several counts (2,4,8) sweep them")
@click.option("--round-trips", type=click.IntRange(10, 1_000_000), default=2000, show_default=True,
              help="request-response round trips for the latency")
@click.option("--only", default=None, metavar="ROUTES",
              help="comma-separated routes (their baselines come along): host-loopback, host-host, pod-pod-same, "
                   "pod-pod, pod-service, pod-outside, outside-nodeport")
@click.option("--compare", "compare_with", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="an earlier run's bench-*.json: print each value beside it")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="where bench-*.json, .md and .png go (default: the job directory)")
@config_options
@friendly_errors
def bench(job_id: str | None, seconds: int, streams: str, round_trips: int, only: str | None,
          compare_with: Path | None, out_dir: Path | None, **kwargs) -> None:
    """Measure the network of a Ready job's cluster against its hosts' own, in one run on the same hosts.

    Pod<->pod on one node and across nodes, pod->Service, pod->outside and outside->NodePort: TCP with 1 and
    N streams (or several N: --streams 2,4,8), UDP and request-response latency, each as a share of (or an increase over) the same
    measurement between the hosts themselves, taken through `srun --jobid ID --overlap`.
    """
    from ksi_multi.bench.command import bench as run_bench
    from ksi_multi.bench.measure import Options
    from ksi_multi.bench.plan import stream_counts

    explicit_image_dir = kwargs.get("image_dir")
    cfg = load_config(kwargs)
    options = Options(seconds=seconds, streams=stream_counts(streams), round_trips=round_trips,
                      only=tuple(r.strip() for r in only.split(",") if r.strip()) if only else ())
    try:
        run_bench(cfg, job_id, options, compare_with, out_dir, click.echo,
                  image_dir=cfg.image_dir if explicit_image_dir else None)
    except Terminated as exc:
        click.echo(f"ksi-multi: bench {exc.cause}; its pods and servers are removed", err=True)
        sys.exit(exc.exit_code)


@main.command("wait-ready")
@click.option("--job", "job_id", default=None, help="job id (default: the latest job)")
@click.option("--timeout", type=float, default=900, show_default=True, help="seconds")
@click.option("--agents-pid", type=int, default=None, hidden=True,
              help="the batch script's srun of the agents: stop waiting as soon as it has exited")
@config_options
@friendly_errors
def wait_ready(job_id: str | None, timeout: float, agents_pid: int | None, **kwargs) -> None:
    """Wait until a job's cluster is ready; fail as soon as it failed or stopped."""
    import time

    from ksi_multi import status as status_mod

    cfg = load_config(kwargs)
    deadline = time.monotonic() + timeout
    while True:
        try:
            job = status_mod.find_job(cfg.jobs_path(), job_id)
            data = job.read_json(job.status_file) or {}
        except KsiError:  # the job has not started yet
            if time.monotonic() > deadline:
                raise
            data, job = {}, None
        state = data.get("state")
        if state == "ready":
            click.echo(data["kubeconfig"])
            return
        where = f"see {job.path}/" if job else "see the job's batch.log"
        if state in ("failed", "stopped"):
            raise KsiError(f"job {job.job_id} {state} before it was ready" + (f": {data['error']}" if data.get("error")
                                                                                else ""), where)
        if agents_pid and not _alive(agents_pid):
            raise KsiError("the agents exited before the cluster was ready", where)
        if time.monotonic() > deadline:
            raise KsiError(f"job {job_id or '?'} not ready after {timeout:g} s (state {state}, phase {data.get('phase')})",
                           where)
        time.sleep(1)


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@main.command()
@click.option("--image-build", "image_build", is_flag=True,
              help="check only what `ksi-multi image build` needs (on the login node)")
@config_options
@friendly_errors
def doctor(image_build: bool, **kwargs) -> None:
    """Check this host's prerequisites and explain how to fix what is missing.

    Without options: what a compute node needs to run a job, then (as warnings) what building the
    images needs. With --image-build: only the latter, and a failure is an error.
    """
    from ksi_multi import doctor as doctor_mod
    from ksi_multi import slurm

    cfg = load_config(kwargs)
    if image_build:
        results = doctor_mod.diagnose_build()
    else:
        try:
            address = slurm.host_address()
        except KsiError:
            address = "0.0.0.0"
        results = doctor_mod.diagnose(cfg, address) + doctor_mod.diagnose_build(blocking=False)
    doctor_mod.table(results, click.echo)
    failed = doctor_mod.failures(results)
    if failed:
        raise KsiError(f"{len(failed)} prerequisite(s) missing: {', '.join(r.name for r in failed)}",
                       "see the fixes above")
    click.echo("all prerequisites met" + ("" if image_build else " (to run a node)"))


@main.command(context_settings={"ignore_unknown_options": True})
@click.option("-N", "--nodes", type=click.IntRange(1), required=True, help="number of nodes")
@click.option("-t", "--time", "time_limit", default=None, help="Slurm time limit, e.g. 2:00:00")
@click.option("-p", "--partition", default=None, help="Slurm partition")
@click.option("-A", "--account", default=None, help="Slurm account")
@click.option("--until", default=None, metavar="PHASE", help="stop the agents after this phase")
@click.argument("workload", nargs=-1, type=click.UNPROCESSED)
@config_options
@friendly_errors
def submit(nodes: int, time_limit: str | None, partition: str | None, account: str | None,
           until: str | None, workload: tuple[str, ...], **kwargs) -> None:
    """Submit the ksi-multi batch job and say where its kubeconfig will appear.

    After `--`, a WORKLOAD command runs in the job once the cluster is ready (with KUBECONFIG set);
    the cluster is torn down when it ends, and the job's exit status is the workload's.
    """
    from ksi_multi import submit as submit_mod

    cfg = load_config(kwargs)
    _check_fits(cfg, nodes)
    job_id = submit_mod.submit(cfg, nodes=nodes, time_limit=time_limit, partition=partition,
                               account=account, until=until, workload=list(workload))
    job_dir = cfg.jobs_path() / job_id
    click.echo(f"submitted job {job_id} on {nodes} node(s)")
    elsewhere = "" if cfg.jobs_path() == configuration.Config().jobs_path() else f" --jobs-dir {cfg.jobs_path()}"
    click.echo(f"  status:     ksi-multi status --job {job_id}{elsewhere}")
    click.echo(f"  kubeconfig: {job_dir / 'kubeconfig'} (once ready)")
    click.echo(f"  logs:       {job_dir}/")


@main.command("batch-script")
@click.option("--path", "show_path", is_flag=True, help="print where the installed script is instead of its text")
@friendly_errors
def batch_script(show_path: bool) -> None:
    """Print the batch script (to copy and edit), or its path: sbatch -N 4 $(ksi-multi batch-script --path)."""
    from ksi_multi.submit import batch_script as script

    click.echo(str(script()) if show_path else script().read_text(), nl=show_path)


@main.command()
@click.option("--job", "job_id", default=None, help="job id (default: the latest job)")
@config_options
@friendly_errors
def kubeconfig(job_id: str | None, **kwargs) -> None:
    """Print the path of a job's kubeconfig (use: export KUBECONFIG=$(ksi-multi kubeconfig))."""
    from ksi_multi import status as status_mod

    cfg = load_config(kwargs)
    click.echo(str(status_mod.kubeconfig_of(cfg.jobs_path(), job_id)))


@main.command()
@click.option("--job", "job_id", default=None, help="job id (default: the latest job)")
@config_options
@friendly_errors
def down(job_id: str | None, **kwargs) -> None:
    """Cancel a job: its agents tear every node down."""
    from ksi_multi import status as status_mod
    from ksi_multi.run import run

    cfg = load_config(kwargs)
    job = status_mod.find_job(cfg.jobs_path(), job_id)
    run(["scancel", job.job_id], timeout=30, fix="is Slurm reachable from here (squeue works)?")
    click.echo(f"cancelled job {job.job_id}")


@main.command(hidden=True)
@click.option("--job", "job_id", default=None, help="job id (default: $SLURM_JOB_ID)")
@click.option("--agents-rc", type=int, required=True, help="exit status of the agents' srun step")
@config_options
@friendly_errors
def finish(job_id: str | None, agents_rc: int, **kwargs) -> None:
    """The batch script's last step: a status an agent left unfinished (killed) becomes failed, with why."""
    from ksi_multi import status as status_mod

    cfg = load_config(kwargs)
    error = status_mod.close_unfinished(status_mod.find_job(cfg.jobs_path(), this_job(job_id)), agents_rc)
    if error:
        click.echo(f"ksi-multi: {error}", err=True)


@main.command(hidden=True)
@click.option("--job", "job_id", required=True, help="job id")
@click.option("--agent-pid", type=int, required=True, help="the agent to outlive")
@config_options
@friendly_errors
def reap(job_id: str, agent_pid: int, **kwargs) -> None:
    """The agent's reaper: once the agent has exited, remove what it left on this host (normally nothing)."""
    from ksi_multi import cleanup as cleanup_mod

    cfg = load_config(kwargs)
    setup_logging(cfg.log_level, f"{os.uname().nodename} reaper")
    found = cleanup_mod.watch(cfg, job_id, agent_pid)
    if found:
        log.warning("the agent of job %s ended without its teardown: removed %s", job_id, "; ".join(found))


@main.command()
@click.option("--job", "job_id", default=None, help="job id (default: $SLURM_JOB_ID)")
@click.option("--cache", "cache", is_flag=True,
              help="empty this host's node image cache instead (images no running job of yours uses)")
@config_options
@friendly_errors
def cleanup(job_id: str | None, cache: bool, **kwargs) -> None:
    """Remove what a job's agent left on this host (it was killed before its teardown); with --cache, the node
    images kept on this host between your jobs (on every host of an allocation: srun ksi-multi cleanup --cache)."""
    from ksi_multi import cleanup as cleanup_mod

    cfg = load_config(kwargs)
    host = os.uname().nodename
    if cache:
        removed, busy = cleanup_mod.clean_cache(cfg)
        click.echo(f"{host}: image cache: removed {len(removed)} image(s)"
                   + (f"; {len(busy)} kept, in use by a running job" if busy else ""))
        if not job_id:
            return
    job_id = this_job(job_id)
    found = cleanup_mod.clean(cfg, job_id)
    if found:
        click.echo(f"{host}: job {job_id}: removed {len(found)} leftover(s): {'; '.join(found)}")
    else:
        click.echo(f"{host}: job {job_id}: nothing left")


@main.command()
@click.argument("name", required=False)
@click.option("--path", "show_path", is_flag=True, help="print where the installed files are instead of their text")
@friendly_errors
def manifest(name: str | None, show_path: bool) -> None:
    """Print the manifests for NAME (dask, dask-operator, spark) to apply with kubectl; without NAME, list them.

    ksi-multi manifest dask | kubectl apply -f -
    """
    from ksi_multi import resources

    found = {p.name: p for p in sorted(resources.path("manifests").iterdir()) if p.is_dir()}
    if not name:
        for known, folder in found.items():
            click.echo(f"{known}: {', '.join(f.name for f in sorted(folder.glob('*.yaml')))}")
        return
    if name not in found:
        raise KsiError(f"no manifests named {name!r}", f"choose one of: {', '.join(found)}")
    if show_path:  # the manifests and the examples next to them
        click.echo("\n".join(str(f) for f in sorted(found[name].rglob("*")) if f.is_file()))
        return
    click.echo("\n---\n".join(f.read_text().rstrip() for f in sorted(found[name].glob("*.yaml"))))


@main.command("spark-defaults")
@click.option("--job", "job_id", default=None, help="job id (default: the latest job)")
@click.option("--image", default=None, help="Spark image (default: the one `image build --workloads spark` made)")
@click.option("--namespace", default="default", show_default=True)
@config_options
@friendly_errors
def spark_defaults(job_id: str | None, image: str | None, namespace: str, **kwargs) -> None:
    """Print spark-submit properties for a job's cluster, for --properties-file (a regular file).

    ksi-multi spark-defaults > spark.conf; spark-submit --properties-file spark.conf --deploy-mode cluster APP
    """
    from ksi_multi import resources, sparkconf
    from ksi_multi import status as status_mod
    from ksi_multi.image import index as image_index

    cfg = load_config(kwargs)
    kubeconfig = status_mod.kubeconfig_of(cfg.jobs_path(), job_id)
    if image is None:
        built = (image_index.read(cfg.image_dir.expanduser()) or {}).get("workloads", {}).get("spark")
        if not built:
            raise KsiError(f"no Spark image in {cfg.image_dir}",
                           "build it (ksi-multi image build --workloads spark) or pass --image")
        image = built["tag"]
    template = resources.path("manifests") / "spark/templates/executor.yaml"
    click.echo(sparkconf.render(sparkconf.server_of(kubeconfig), image, template, namespace), nl=False)


@main.command()
@click.option("--job", "job_id", default=None, help="job id (default: the latest job)")
@click.argument("archives", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@config_options
@friendly_errors
def load(job_id: str | None, archives: tuple[Path, ...], **kwargs) -> None:
    """Import image archives (podman save / docker save) into every node of a running job.

    ARCHIVES must be on storage every node can read (your home directory, a project directory).
    """
    from ksi_multi import loadjob

    cfg = load_config(kwargs)
    loadjob.load(cfg, job_id, [a.expanduser().absolute() for a in archives], echo=click.echo)


@main.command("import-images", hidden=True)
@click.option("--job", "job_id", required=True)
@click.argument("archives", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@config_options
@friendly_errors
def import_images(job_id: str, archives: tuple[Path, ...], **kwargs) -> None:
    """This host's part of `ksi-multi load` (run by srun on every node): one result line."""
    from ksi_multi import loadjob

    cfg = load_config(kwargs)
    result = loadjob.import_here(cfg, job_id, list(archives))
    click.echo(loadjob.imageload.RESULT_MARK + result.to_json())
    if result.error:
        sys.exit(1)


def default_cache() -> Path:
    return Path("/var/cache/ksi-multi") if os.geteuid() == 0 else Path("~/.cache/ksi-multi").expanduser()


@main.group()
def image() -> None:
    """Build node and toolbox images offline, and load them into rootless podman."""


@image.command("build")
@click.option("--kubernetes-version", default="1.32", show_default=True,
              help="a series (newest patch) or a release such as v1.32.5")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=Path("~/.ksi-multi/images"),
              show_default=True, help="where the image archives go (shared storage, read by every node)")
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="build cache (default /var/cache/ksi-multi as root, else ~/.cache/ksi-multi)")
@click.option("--workloads", "workload_names", default="", metavar="NAMES",
              help="also build workload images: dask, spark (comma-separated) or all")
@click.option("--liqo", "with_liqo", is_flag=True,
              help="also build Liqo (liqoctl, its chart and component images) for `federation: liqo`")
@friendly_errors
def image_build(kubernetes_version: str, output: Path, cache: Path | None, workload_names: str,
                with_liqo: bool) -> None:
    """Build the node image (Kubernetes from Go modules + Debian), the toolbox image and, when asked,
    workload images (load them with `ksi-multi load` or the `images` key)."""
    from ksi_multi.image import build, workloads
    from ksi_multi.image import index as image_index

    names = workloads.names(workload_names) if workload_names else ()
    built = build.build(output.expanduser(), (cache or default_cache()).expanduser(), kubernetes_version,
                        echo=click.echo, workload_names=names, with_liqo=with_liqo)
    click.echo(f"node image {built.node_tag}: {built.node_archive}")
    click.echo(f"toolbox image: {built.toolbox_archive}")
    index = image_index.read(output.expanduser()) or {}
    for name in names:
        entry = index["workloads"][name]
        click.echo(f"{name} image {entry['tag']}: {output.expanduser() / entry['archive']}")
    if with_liqo:
        click.echo(f"Liqo {index['liqo']['version']}: {output.expanduser() / index['liqo']['liqoctl']}, "
                   f"{output.expanduser() / index['liqo']['archive']}")


@image.command("load")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@friendly_errors
def image_load(archive: Path) -> None:
    """Load an image archive into your rootless podman store (the agent does this per job by itself)."""
    from ksi_multi.run import run

    run(["podman", "load", "-i", str(archive)], timeout=900, capture=False,
        fix="check that rootless podman works (ksi-multi doctor)")


from ksi_multi.sandbox.cli import sandbox  # noqa: E402

main.add_command(sandbox)
