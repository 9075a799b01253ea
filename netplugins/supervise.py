"""A mesh plugin's helper process (ksi-wg) started again when it dies, with the reason it died."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from ksi_multi.proxy import Restart
from ksi_multi.run import log_tail

log = logging.getLogger("ksi_multi.agent")


def restarted(proc: subprocess.Popen | None, log_file: Path, ready: Path, start: Callable[[], None],
              previous: Restart | None, what: str) -> Restart | None:
    """None while the helper runs; else start it again (its `ready` socket removed first: the new one is
    ready when it makes its own) and say why it had died."""
    if proc is None or proc.poll() is None:
        return None
    code = proc.returncode
    why = f"killed by signal {-code}" if code < 0 else f"exited with {code}: {log_tail(log_file, 300)}"
    log.error("mesh: %s %s; starting it again", what, why)
    ready.unlink(missing_ok=True)
    start()
    return Restart(why, (previous.restarts if previous else 0) + 1, time.time())
