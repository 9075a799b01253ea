from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ksi_multi import doctor
from ksi_multi.errors import KsiError

if TYPE_CHECKING:
    from ksi_multi.agent import AgentContext

log = logging.getLogger("ksi_multi.agent")


class DoctorPhase:
    """Refuse to start on a host that lacks a prerequisite; say which and how to fix it."""

    name = "doctor"

    def execute(self, ctx: AgentContext) -> None:
        results = doctor.diagnose(ctx.config, ctx.address, coordinator=ctx.slurm.is_coordinator)
        for r in results:
            (log.debug if r.ok else log.warning)("doctor: %-4s %s: %s", r.status, r.name, r.detail)
        log.info("doctor: %d of %d checks ok", sum(r.ok for r in results), len(results))
        failed = doctor.failures(results)
        if failed:
            first = failed[0]
            more = f" (and {len(failed) - 1} more: {', '.join(f.name for f in failed[1:])})" if len(failed) > 1 else ""
            raise KsiError(f"{ctx.slurm.hostname}: {first.name}: {first.detail}{more}", first.fix)
