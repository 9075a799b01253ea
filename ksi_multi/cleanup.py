"""Remove what a job left on this host when its agent could not tear down (killed, out of memory).

The agent tears down after itself on every normal path; this is the safety net: each agent's reaper
(`watch`) runs it on its host as soon as the agent has exited, the batch script on every node after the
agents have ended, and a user (or an Epilog) can run it by hand.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import time
from pathlib import Path

import psutil

from ksi_multi import processes, scratch
from ksi_multi.cgroups import JobCgroup
from ksi_multi.config import Config
from ksi_multi.errors import KsiError
from ksi_multi.jobhost import job_host
from ksi_multi.run import run

log = logging.getLogger(__name__)


REAPER_WAIT = 120.0


def _command_of(job_id: str, command: str) -> psutil.Process | None:
    """This user's `ksi-multi <command>` (agent, reap) of `job_id` on this host, if one still runs."""
    for proc in psutil.process_iter(["cmdline", "uids"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
            if proc.pid == os.getpid() or proc.info["uids"].real != os.getuid():
                continue
            if f" {command}" not in cmd or "ksi" not in cmd:
                continue
            if proc.environ().get("SLURM_JOB_ID") == job_id or f"--job {job_id} " in f"{cmd} ":
                return proc
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return None


def _agent_of(job_id: str) -> psutil.Process | None:
    return _command_of(job_id, "agent")


def _wait_for_reaper(job_id: str) -> None:
    """The agent's reaper may be cleaning up right now (the agent was killed a moment ago): two cleanups at
    once kill each other's podman commands and make the store's directories again behind each other."""
    reaper = _command_of(job_id, "reap")
    if reaper is None:
        return
    log.info("cleanup: waiting for the reaper of job %s (pid %d) to finish", job_id, reaper.pid)
    _, alive = psutil.wait_procs([reaper], timeout=REAPER_WAIT)
    if alive:
        raise KsiError(f"the reaper of job {job_id} (pid {reaper.pid}) has been cleaning up for "
                       f"{REAPER_WAIT:.0f} s and is still at it",
                       f"see its lines in the job's agent log; run `ksi-multi cleanup --job {job_id}` again later")


def _job_processes(runtime: Path, job_scratch: Path, cgroup: JobCgroup | None) -> set[int]:
    """This user's processes of the job: everything in the job cgroup, whatever names the job's runtime or
    scratch directory on its command line (ksi-wg, ksi-proxy, conmon, pasta), and whatever podman started
    for the job's store (its pause process: XDG_RUNTIME_DIR is the job's runtime directory)."""
    pids = _store_processes(runtime, job_scratch)
    if cgroup:
        pids |= cgroup.pids()
    pids.discard(os.getpid())
    return pids


def _store_processes(runtime: Path, job_scratch: Path) -> set[int]:
    return processes.naming([runtime, job_scratch]) | processes.with_environment("XDG_RUNTIME_DIR", str(runtime))


def clean(cfg: Config, job_id: str) -> list[str]:
    """Remove the job's containers, processes, podman store, cgroup and scratch on this host; return what was
    found (empty: nothing was left)."""
    agent = _agent_of(job_id)
    if agent:
        raise KsiError(f"the agent of job {job_id} still runs on this host (pid {agent.pid})",
                       "it tears down by itself: stop the job (scancel) instead")
    _wait_for_reaper(job_id)
    here = job_host(cfg, job_id)
    home, cgroup, job_scratch, runtime = here.podman, here.cgroup, here.scratch, here.podman.runtime
    found = []
    # Only directories of this user itself: another user may have made these predictable paths first, or
    # put a link there to something of ours.
    store = scratch.own_directories(job_scratch.parent, job_scratch)
    sockets = scratch.own_directories(runtime)
    for path, mine in ((job_scratch, store), (runtime, sockets)):
        if os.path.lexists(path) and not mine:
            log.warning("cleanup: %s is not a directory of yours: left alone", path)
    if store and home.base.exists():
        found.append(f"podman store {home.base}")
        run(["podman", "rm", "--all", "--force", "--time", "0"], timeout=120, check=False, extra_env=home.env())
    pids = _job_processes(runtime, job_scratch, cgroup)
    for pid in sorted(pids):
        try:
            found.append(f"process {pid} ({psutil.Process(pid).name()})")
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass
    if store:
        home.remove()
    if sockets:
        home.stop_pause_process()  # also when the store was already gone
    if cgroup and any(p.exists() for p in cgroup.paths()):
        found.append(f"cgroup {cgroup.rel}")
        cgroup.remove()
    found += [str(path) for path, mine in ((job_scratch, store), (runtime, sockets)) if mine]
    scratch.remove(job_scratch)
    if sockets:
        shutil.rmtree(runtime, ignore_errors=True)
    _settle(runtime, job_scratch)
    for what in found:
        log.info("cleanup: removed %s", what)
    return found


def _settle(runtime: Path, job_scratch: Path, seconds: float = 3.0) -> None:
    """A container killed here makes conmon run its exit command (`podman container cleanup`) a moment
    later, which creates the store's directories again: end such late-comers and remove what they made."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.3)
        late = _store_processes(runtime, job_scratch)
        if not late and not job_scratch.exists() and not runtime.exists():
            continue
        processes.end(late, grace=0)
        scratch.remove(job_scratch)
        if scratch.own_directories(runtime):
            shutil.rmtree(runtime, ignore_errors=True)


def watch(cfg: Config, job_id: str, agent_pid: int, poll: float = 0.5) -> list[str]:
    """The agent's reaper on this host: wait until the agent has exited, however it ended, then clean up
    after it. After a teardown that finds nothing; after a SIGKILL or the OOM killer it removes the node at
    once (the other nodes then see it gone), without waiting for the job's end, whose cleanup step Slurm
    may no longer let start (a cancelled job takes no new steps). Stop signals are for the agent: the reaper
    outlives them."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    here = job_host(cfg, job_id)
    if here.cgroup:  # where Slurm, ending the agent's step on this host, does not kill it (proctrack/cgroup)
        here.cgroup.join_delegated()
    try:
        agent = psutil.Process(agent_pid)
        agent.wait()
    except psutil.NoSuchProcess:
        pass
    while left := _agent_of(job_id):  # a killed agent's process may take a moment to be gone from the table
        psutil.wait_procs([left], timeout=poll)
    return clean(cfg, job_id)


def clean_cache(cfg: Config) -> tuple[list[str], list[str]]:
    """Empty this host's node image cache: (the images removed, those kept because a running job uses them)."""
    from ksi_multi.imagecache import ImageCache
    from ksi_multi.podman import PodmanHome

    cache = ImageCache.of(cfg.image_cache_dir, cfg.image_cache, scratch.base_dir(cfg.scratch))
    if not cache.root.is_dir():
        return [], []
    # podman unshare needs a runtime directory of its own (not a job's): its pause process ends here too
    runtime = scratch.runtime_dir("cache")
    scratch.ensure_private(runtime.parent, runtime)
    home = PodmanHome(runtime / "podman", runtime=runtime / "run")
    try:
        return cache.clear(home)
    finally:
        home.remove()
        shutil.rmtree(runtime, ignore_errors=True)
