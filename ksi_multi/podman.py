"""Rootless podman confined to one node-local directory: storage, runtime state, its pause process."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

from ksi_multi import processes
from ksi_multi.run import CommandError, run


class PodmanHome:
    """Everything podman keeps for one job lives under `base` (node-local scratch), never in $HOME.

    Rootless podman puts its image store under $XDG_DATA_HOME/containers/storage and its runtime
    state under $XDG_RUNTIME_DIR, so pointing those (and the config dir) into `base` is enough.
    """

    def __init__(self, base: Path, runtime: Path | None = None) -> None:
        self.base = base
        # Sockets live here (slirp4netns's API socket among them): unix socket paths must stay < 108 bytes.
        self.runtime = runtime or base / "xdg-run"

    def env(self) -> dict[str, str]:
        self.base.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
        return {"XDG_RUNTIME_DIR": str(self.runtime), "XDG_CONFIG_HOME": str(self.base / "config"),
                "XDG_DATA_HOME": str(self.base / "data"), "TMPDIR": str(self.base),
                "PODMAN_IGNORE_CGROUPSV1_WARNING": "1"}

    @property
    def graphroot(self) -> Path:
        return self.base / "data" / "containers" / "storage"

    def own_dir(self, name: str) -> Path:
        """A path for a directory that goes with the store (containers may fill it with files of sub-ids)."""
        return self.base / "data" / name

    def read_images_from(self, store: Path) -> None:
        """Let this store use the images of `store` (read-only, nothing copied) beside its own."""
        conf = self.base / "config" / "containers" / "storage.conf"
        conf.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        conf.write_text(storage_conf(self.graphroot, self.runtime / "containers", store))

    def podman(self, *args: str, timeout: float = 120, **kwargs):
        return run(["podman", *args], timeout=timeout, extra_env=self.env(), **kwargs)

    def stop_pause_process(self) -> None:
        """Rootless podman keeps a pause process holding its user namespace; end it with the job. A podman
        killed while it started one (a stop during the node phase) may not have written its pid file: every
        process with this store's XDG_RUNTIME_DIR goes too."""
        pid_file = self.runtime / "libpod" / "tmp" / "pause.pid"
        try:
            os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
        except (FileNotFoundError, ValueError, ProcessLookupError):
            pass
        processes.end(processes.with_environment("XDG_RUNTIME_DIR", str(self.runtime)), grace=0)

    def remove(self) -> None:
        """Delete the store (its files belong to sub-ids: removed inside the user namespace) and the pause process."""
        if not self.base.exists():
            return
        # conmon and the `podman container cleanup` it runs when a container exits may still be at work
        # for this store: a late one would create the directories again after they are gone. The store
        # goes whole, so they get a moment, not the time to finish.
        processes.end(processes.naming([self.base, self.runtime]), grace=1)
        try:
            run(["podman", "unshare", "rm", "-rf", str(self.base / "data"), str(self.runtime / "containers")],
                timeout=300, extra_env=self.env())
        except CommandError:
            pass
        self.stop_pause_process()
        shutil.rmtree(self.base, ignore_errors=True)
        shutil.rmtree(self.runtime, ignore_errors=True)


def storage_conf(graphroot: Path, runroot: Path, image_store: Path) -> str:
    """containers-storage.conf(5) of a store that also reads the images of `image_store`."""
    q = json.dumps  # TOML basic strings take JSON's escapes
    return (f'[storage]\ndriver = "overlay"\ngraphroot = {q(str(graphroot))}\nrunroot = {q(str(runroot))}\n\n'
            f'[storage.options]\nadditionalimagestores = [{q(str(image_store))}]\n')
