"""The per-node agent: named phases run in order, teardown in reverse, on success, failure or signal."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ksi_multi.config import Config
from ksi_multi.errors import Aborted, KsiError, Terminated
from ksi_multi.jobdir import JobDir, write_json
from ksi_multi.phases.results import Results
from ksi_multi.rendezvous import RendezvousError
from ksi_multi.slurm import SlurmContext
from ksi_multi.status import StatusFile

if TYPE_CHECKING:
    from ksi_multi.channel import LocalChannel, RendezvousClient

log = logging.getLogger("ksi_multi.agent")

PHASES = ("doctor", "rendezvous", "node", "mesh", "cluster", "ready", "wait")


@dataclass
class AgentContext:
    """What every phase works with: the job's settings and services. What the phases make is in `results`."""

    config: Config
    slurm: SlurmContext
    job: JobDir
    address: str
    cleanup: contextlib.ExitStack
    status: StatusFile | None = None
    # The coordination channel, opened by the rendezvous phase: the runner too needs it (an abort, the end).
    channel: RendezvousClient | LocalChannel | None = None
    abort_reason: str = ""  # why the job was aborted elsewhere, once it was
    results: Results = field(default_factory=Results)
    timings: dict[str, float] = field(default_factory=dict)  # phase -> seconds, in order
    # False when the job ends before the cluster phase (--until mesh): the node then runs no Kubernetes parts
    kubernetes: bool = True

    def on_teardown(self, what: str, fn: Callable[[], Any]) -> None:
        """Register a teardown step; steps run in reverse order and one failing does not stop the rest."""
        def guarded() -> None:
            started = time.monotonic()
            try:
                fn()
            except Exception as exc:  # teardown must go on
                log.error("teardown: %s failed: %s", what, exc)
            log.debug("teardown: %s: %.1f s", what, time.monotonic() - started)
        self.cleanup.callback(guarded)

    def abort(self, reason: str) -> None:
        """The job was aborted elsewhere (any thread may call this): stop the phase the main thread is in."""
        self.abort_reason = reason
        os.kill(os.getpid(), ABORT_SIGNAL)


class Phase(Protocol):
    name: str

    def execute(self, ctx: AgentContext) -> object | None:
        """Do the phase's work; return its result (see ksi_multi.phases.results), if it has one."""


def registry(coordinator: bool = True, federation: str = "none") -> dict[str, type]:
    """Each phase's implementation for rank 0 (the coordinator) or for the other nodes, as kind separates
    kubeadm init from join: the phases hold no rank tests of their own for these. `federation: liqo`: every
    node inits its own cluster, and rank 0 peers them."""
    from ksi_multi.phases.cluster import ClusterInitPhase, ClusterJoinPhase
    from ksi_multi.phases.doctor import DoctorPhase
    from ksi_multi.phases.federated import HubReadyPhase, OwnClusterPhase
    from ksi_multi.phases.mesh import MeshPhase
    from ksi_multi.phases.node import NodePhase
    from ksi_multi.phases.ready import ReadyPhase, WorkerReadyPhase
    from ksi_multi.phases.rendezvous import CoordinatorRendezvousPhase, WorkerRendezvousPhase
    from ksi_multi.phases.wait import WaitPhase

    liqo = federation == "liqo"
    if coordinator:
        phases = (DoctorPhase, CoordinatorRendezvousPhase, NodePhase, MeshPhase,
                  OwnClusterPhase if liqo else ClusterInitPhase, HubReadyPhase if liqo else ReadyPhase, WaitPhase)
    else:
        phases = (DoctorPhase, WorkerRendezvousPhase, NodePhase, MeshPhase,
                  OwnClusterPhase if liqo else ClusterJoinPhase, WorkerReadyPhase, WaitPhase)
    return {p.name: p for p in phases}


def plan(until: str | None) -> list[str]:
    """The phases to run, checked before anything starts, so nothing is left half-started."""
    if until is not None and until not in PHASES:
        raise KsiError(f"unknown phase '{until}'", f"choose one of: {', '.join(PHASES)}")
    return list(PHASES[: PHASES.index(until) + 1]) if until else list(PHASES)


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
ABORT_SIGNAL = signal.SIGUSR1  # to itself, from the thread that learnt of an abort


def _hold_stop_signals() -> None:
    for sig in (*STOP_SIGNALS, ABORT_SIGNAL):
        signal.signal(sig, signal.SIG_IGN)


def _raise_on_signal(signum: int, _frame: Any) -> None:
    # The first stop signal starts the teardown; the next ones (scancel and the batch script each send
    # one) must not interrupt it, not even before the teardown begins.
    _hold_stop_signals()
    raise Terminated(signal.Signals(signum).name)


def _teardown(ctx: AgentContext) -> None:
    """Undo every phase in reverse order; a second signal must not cut this short."""
    _hold_stop_signals()
    started = time.monotonic()
    log.info("teardown: start")
    ctx.cleanup.close()
    log.info("teardown: done in %.1f s", time.monotonic() - started)


def teardown_early(ctx: AgentContext) -> None:
    """Tear down now but keep the agent running (a lost node waits for the job's end): signals are held
    off during the teardown and stop the agent again afterwards."""
    _teardown(ctx)
    for sig in STOP_SIGNALS:
        signal.signal(sig, _raise_on_signal)


FINISH_WAIT = 30.0  # seconds rank 0 waits for the others at the end of a run cut short with --until


def _finish_together(ctx: AgentContext) -> None:
    """At the end of the phases (--until), rank 0 keeps the channel open until every node has finished too:
    a node still waiting on the last barrier would otherwise find it gone."""
    if ctx.channel is None:
        return
    deadline = time.monotonic() + FINISH_WAIT
    try:
        ctx.channel.put("done", {}, deadline)
        if ctx.slurm.is_coordinator:
            ctx.channel.wait_all("done", deadline)
    except RendezvousError as exc:
        log.warning("finishing: %s", exc.cause)


def _tell_the_others(ctx: AgentContext, phase: str | None, exc: Exception) -> None:
    """A failure here aborts the job everywhere, through rank 0, before this node tears down."""
    if ctx.channel is None:
        return
    cause = exc.cause if isinstance(exc, KsiError) else f"{type(exc).__name__}: {exc}"
    try:
        ctx.channel.abort(f"{phase}: {cause}")
    except Exception as err:  # rank 0 gone already: the others' watchers find it silent
        log.warning("could not tell rank 0 about the failure: %s", err)


def _stop_reason(ctx: AgentContext, signal_name: str, phase: str | None) -> str:
    """Why the job stopped, for status.json: what the batch script knew (a cancel, the time limit), else the
    signal; and where the job was."""
    told = ctx.job.read_note(ctx.job.stop_reason_file)
    where = "while holding the cluster" if phase == "wait" else f"during phase {phase}"
    return f"{told or signal_name} {where}"


def _report_timings(ctx: AgentContext) -> None:
    """Print this node's phase durations; rank 0 also writes them to timings.json in the job directory."""
    timings = ctx.timings
    if not timings:
        return
    log.info("timings: %s", ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    if ctx.slurm.is_coordinator:
        write_json(ctx.job.timings_file, {k: round(v, 3) for k, v in timings.items()})


def run(ctx: AgentContext, phases: list[str]) -> None:
    """Run the phases; tear down on success, failure or signal. A signal while holding the cluster is the
    normal end of a job; anywhere else it is reported as a stop. Failures update status.json (rank 0)."""
    available = registry(coordinator=ctx.slurm.is_coordinator if ctx.slurm else True,
                         federation=ctx.config.federation if ctx.config else "none")
    for sig in STOP_SIGNALS:
        signal.signal(sig, _raise_on_signal)

    def aborted(_signum: int, _frame: Any) -> None:
        _hold_stop_signals()
        raise Aborted(f"the job was aborted: {ctx.abort_reason}")

    signal.signal(ABORT_SIGNAL, aborted)
    current = None
    try:
        try:
            for name in phases:
                current = name
                if ctx.status:
                    ctx.status.update(phase=name)
                log.info("phase %s: start", name)
                started = time.monotonic()
                ctx.results.record(name, available[name]().execute(ctx))
                elapsed = time.monotonic() - started
                log.info("phase %s: done in %.2f s", name, elapsed)
                ctx.timings[name] = elapsed
                if ctx.status:
                    ctx.status.timing(name, elapsed)
            current = None
            _finish_together(ctx)
        except Exception as exc:  # a Stop is no failure of this node's: nothing to tell
            _tell_the_others(ctx, current, exc)
            raise
        finally:
            _teardown(ctx)
            _report_timings(ctx)
    except Terminated as exc:
        log.info("%s during phase %s", exc.cause, current)
        if ctx.status:
            ctx.status.update(state="stopped", phase=None, reason=_stop_reason(ctx, exc.cause, current))
        if current != "wait":
            raise
        return
    except Aborted as exc:
        if ctx.status:
            ctx.status.update(state="failed", error=exc.cause)
        raise
    except KsiError as exc:
        if ctx.status:
            ctx.status.update(state="failed", error=f"{current}: {exc.cause}")
        raise
    if ctx.status:
        ctx.status.update(state="stopped", phase=None, reason=f"ran until phase {phases[-1]} (--until)")
