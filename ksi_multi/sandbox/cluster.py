"""Bring the virtual HPC cluster up and down, and run commands on its hosts."""

from __future__ import annotations

import json
import logging
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import psutil

import ksi_multi
from ksi_multi import resources
from ksi_multi.errors import KsiError
from ksi_multi.run import run
from ksi_multi.sandbox import cgroups, network, rootfs
from ksi_multi.sandbox.plan import UID, USER, Host, SandboxPlan, hosts_file, resolv_conf, slurm_conf

log = logging.getLogger(__name__)

STATE_ROOT = Path("/var/lib/ksi-multi/sandbox")
CACHE_ROOT = Path(os.environ.get("KSI_SANDBOX_CACHE", "/var/cache/ksi-multi/sandbox"))
# Seen read-only at the same path on every host, like a site's shared software filesystem.
SHARED = Path(os.environ.get("KSI_SANDBOX_SHARED", "/var/cache/ksi-multi/shared"))
# The checkout this code runs from, if it runs from one: the sandbox builds its wheel from it and shows it
# at the same path on every host (for the tests' own scripts; ksi-multi itself comes from the wheel).
REPO = Path(ksi_multi.__file__).resolve().parent.parent
SCRATCH_SIZE = 64 << 30
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Where the sandbox user's ksi-multi is installed from the wheel, as a user does on a login node.
VENV = f"/home/{USER}/.local/ksi-multi"
WRAPPER = f"""#!/bin/sh
# ksi-multi as the sandbox user installed it from a wheel, into a virtual environment on the shared home.
exec {VENV}/bin/ksi-multi "$@"
"""


def is_checkout(path: Path = REPO) -> bool:
    return (path / "pyproject.toml").is_file() and (path / "ksi_multi").is_dir()


def build_wheel(source: Path, out: Path) -> Path:
    """A wheel of ksi-multi built from a checkout, as a site would build it for its users. Built from a clean
    copy: an in-tree build directory would carry files since removed from the checkout into the wheel."""
    out.mkdir(parents=True, exist_ok=True)
    clean = out / "source"
    shutil.copytree(source, clean, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", ".venv", ".*_cache", "results"))
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--disable-pip-version-check",
         "--wheel-dir", str(out), str(clean)], timeout=600,
        fix="check that pip can build the package (setuptools from PyPI or the pip cache)")
    wheels = sorted(out.glob("ksi_multi-*.whl"), key=lambda p: p.stat().st_mtime)
    if not wheels:
        raise KsiError(f"pip built no ksi-multi wheel from {source}")
    return wheels[-1]


def require_root(action: str) -> None:
    if os.geteuid() != 0:
        raise KsiError(f"`ksi-multi sandbox {action}` needs root: it creates namespaces, mounts and cgroups",
                       f"run it as root, e.g. sudo ksi-multi sandbox {action}")


class Sandbox:
    def __init__(self, name: str = "ksi", state_root: Path = STATE_ROOT) -> None:
        self.name = name
        self.dir = state_root / name
        self.state_file = self.dir / "state.json"

    # ---- state ----
    def state(self) -> dict | None:
        try:
            return json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return None

    def plan(self) -> SandboxPlan:
        state = self.state()
        if state is None:
            raise KsiError(f"sandbox '{self.name}' is not up", "start it: sudo ksi-multi sandbox up -N 4")
        return SandboxPlan(**state["plan"])

    def pid1(self, host: str) -> int:
        """PID (in the machine's namespace) of the host's init (tini)."""
        state = self.state() or {}
        outer = state.get("hosts", {}).get(host)
        if outer is None:
            self.plan().host(host)  # raises with the list of hosts
        try:
            children = psutil.Process(outer).children()
        except psutil.NoSuchProcess:
            children = []
        if not children:
            raise KsiError(f"sandbox host {host} is not running", "sudo ksi-multi sandbox down; then up again")
        return children[0].pid

    def alive(self) -> bool:
        state = self.state()
        return bool(state) and all(psutil.pid_exists(p) for p in state["hosts"].values())

    # ---- up ----
    def up(self, plan: SandboxPlan, echo=print, wheel: Path | None = None) -> float:
        """Start the sandbox; its user gets ksi-multi from `wheel` (default: built from this checkout)."""
        require_root("up")
        cgroups.require_v1()
        if self.alive():
            raise KsiError(f"sandbox '{self.name}' is already up ({self.plan().nodes} nodes)",
                           "use it (ksi-multi sandbox status), or take it down first: sudo ksi-multi sandbox down")
        if wheel is None and not is_checkout():
            raise KsiError("ksi-multi does not run from a checkout here, so the sandbox cannot build its wheel",
                           "pass the wheel you installed from: ksi-multi sandbox up --wheel ksi_multi-*.whl")
        if self.dir.exists() or network.namespaces(self.name):
            echo(f"removing the remains of an earlier sandbox '{self.name}' ...")
            self.down(echo=lambda _msg: None)
        started = time.monotonic()
        root = rootfs.ensure(CACHE_ROOT, echo=echo)
        with tempfile.TemporaryDirectory(prefix="ksi-sandbox-wheel-") as tmp:
            if wheel is None:
                echo(f"building the ksi-multi wheel from {REPO} ...")
                wheel = build_wheel(REPO, Path(tmp))
            try:
                self._up(plan, root, wheel, echo)
            except BaseException:
                echo("sandbox up failed; removing what was started ...")
                self.down(echo=lambda _msg: None)
                raise
        elapsed = time.monotonic() - started
        echo(f"sandbox '{self.name}' up in {elapsed:.1f} s: login + {plan.nodes} nodes ({plan.nodelist}), "
             f"user {USER}")
        return elapsed

    def _write_config(self, plan: SandboxPlan, wheel: Path) -> Path:
        cfg = self.dir / "config"
        cfg.mkdir(parents=True)
        (cfg / "hosts").write_text(hosts_file(plan))
        (cfg / "resolv.conf").write_text(resolv_conf(plan))
        (cfg / "slurm.conf").write_text(slurm_conf(plan))
        (cfg / "user").write_text(USER + "\n")
        (cfg / "ksi-multi").write_text(WRAPPER)
        shutil.copy(wheel, cfg / wheel.name)
        shutil.copy(resources.path("sandbox/services.sh"), cfg / "services.sh")
        for h in plan.hosts:
            (cfg / f"role.{h.name}").write_text(h.role + "\n")
        key = cfg / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o400)
        return cfg

    def _up(self, plan: SandboxPlan, root: Path, wheel: Path, echo) -> None:
        self.dir.mkdir(parents=True, mode=0o700)
        SHARED.mkdir(parents=True, exist_ok=True)
        cfg = self._write_config(plan, wheel)
        home = self.dir / "home"
        (home / USER).mkdir(parents=True)
        os.chown(home / USER, UID, UID)
        (home / USER).chmod(0o700)
        network.create(plan)
        self._mount_scratch()
        hosts = {}
        for h in plan.hosts:
            hosts[h.name] = self._start_host(plan, h, root, cfg, home)
        state = {"plan": asdict(plan), "repo": str(REPO), "rootfs": str(root), "hosts": hosts,
                 "created": time.time()}
        from ksi_multi.jobdir import write_json

        write_json(self.state_file, state)
        self._wait_ready(plan)
        self._wait_slurm(plan)
        self._install(wheel.name, echo)

    def _install(self, wheel: str, echo) -> None:
        """The sandbox user installs ksi-multi from the wheel into a virtual environment on the shared home;
        the Python libraries it needs come from the hosts' Debian packages (the hosts reach no index)."""
        started = time.monotonic()
        proc = self.exec("login", f"python3 -m venv --system-site-packages {VENV} && "
                                  f"{VENV}/bin/pip install --quiet --disable-pip-version-check --no-index --no-deps "
                                  f"/etc/ksi-sandbox/{wheel} && {VENV}/bin/pip check --disable-pip-version-check",
                         capture=True, timeout=300)
        if proc.returncode != 0:
            raise KsiError(f"installing {wheel} in the sandbox failed: {(proc.stderr or proc.stdout).strip()[-600:]}",
                           "the hosts' Debian packages must provide ksi-multi's dependencies (sandbox/rootfs.py)")
        echo(f"ksi-multi installed from {wheel} into {VENV} in {time.monotonic() - started:.1f} s")

    @property
    def scratch(self) -> Path:
        return self.dir / "scratch"

    def _mount_scratch(self) -> None:
        """The hosts' node-local scratch: a filesystem of its own, without online discard, like a compute
        node's local disk. This machine's root filesystem is mounted with `discard`, which makes every
        deletion wait for the disk to trim: four nodes removing their stores at once took 24 s of Slurm's
        30 s KillWait, one alone 4 s."""
        image = self.dir / "scratch.img"
        free = shutil.disk_usage(self.dir).free
        with open(image, "wb") as f:
            f.truncate(min(SCRATCH_SIZE, free * 4 // 5))  # sparse: takes space as it is written
        run(["mkfs.ext4", "-q", "-E", "nodiscard,lazy_itable_init=1", "-m", "0", str(image)], timeout=120,
            fix="the sandbox needs e2fsprogs (mkfs.ext4)")
        self.scratch.mkdir()
        # Direct I/O: the image's pages are not cached twice (once for each filesystem).
        device = run(["losetup", "--find", "--show", "--direct-io=on", str(image)], timeout=60,
                     fix="the sandbox needs loop devices (modprobe loop)").stdout.strip()
        try:
            run(["mount", "-o", "nodiscard", device, str(self.scratch)], timeout=60)
        finally:
            run(["losetup", "--detach", device], timeout=60)  # lazily: the device goes with its last mount

    def _start_host(self, plan: SandboxPlan, host: Host, root: Path, cfg: Path, home: Path) -> int:
        hdir = self.dir / "hosts" / host.name
        for sub in ("upper", "work", "root"):
            (hdir / sub).mkdir(parents=True)
        tmp = self.scratch / host.name
        tmp.mkdir(mode=0o1777)
        tmp.chmod(0o1777)
        (hdir / "tmp").symlink_to(tmp)
        cgroups.create(self.name, host.name)
        env = {"PATH": HOST_PATH, "ROOTFS": str(root), "STATE": str(hdir), "CONFIG": str(cfg),
               "HOME_DIR": str(home), "REPO": str(REPO) if is_checkout() else "", "SHARED": str(SHARED),
               "HOST_NAME": host.name}
        cmd = ["nsenter", f"--net={network.NETNS_DIR / plan.netns(host)}", "--",
               "unshare", "--mount", "--uts", "--ipc", "--pid", "--cgroup", "--fork", "--kill-child", "--",
               "bash", str(resources.path("sandbox/hostinit.sh"))]
        console = open(hdir / "console.log", "ab")
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=console, stderr=console,
                                start_new_session=True, preexec_fn=lambda: cgroups.join(self.name, host.name))
        console.close()
        return proc.pid

    def _wait_ready(self, plan: SandboxPlan, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        for h in plan.hosts:
            while True:
                try:
                    if Path(f"/proc/{self.pid1(h.name)}/root/run/ksi-sandbox.ready").exists():
                        break
                except KsiError:
                    pass
                if time.monotonic() > deadline:
                    console = (self.dir / "hosts" / h.name / "console.log").read_text()[-800:]
                    raise KsiError(f"sandbox host {h.name} did not start within {timeout:g} s: {console}")
                time.sleep(0.05)

    def _wait_slurm(self, plan: SandboxPlan, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            proc = self.exec("login", ["sinfo", "--noheader", "--Node", "--format=%N %T"], root=True,
                             capture=True, check=False)
            states = dict(line.split() for line in proc.stdout.splitlines() if len(line.split()) == 2)
            if len(states) == plan.nodes and all(s == "idle" for s in states.values()):
                return
            if time.monotonic() > deadline:
                raise KsiError(f"Slurm nodes not idle within {timeout:g} s: {states or proc.stderr.strip()}",
                               f"see {self.dir}/hosts/*/upper/var/log/slurm/")
            time.sleep(0.2)

    # ---- commands on hosts ----
    def command(self, host: str, cmd: list[str] | str, root: bool = False) -> list[str]:
        """The command line that runs `cmd` through a login shell on a sandbox host.

        A list is quoted word by word; a string is shell text (as ssh passes it); empty: a login shell.
        """
        pid = self.pid1(host)
        enter = ["nsenter", "-t", str(pid), "-m", "-u", "-i", "-n", "-p", "-C", "-r", "-w"]
        script = (shlex.join(cmd) if isinstance(cmd, list) else cmd) or "exec bash -l"
        if root:
            return [*enter, "env", "-i", f"PATH={HOST_PATH}", "HOME=/root", "USER=root",
                    f"TERM={os.environ.get('TERM', 'dumb')}", "bash", "-lc", script]
        return [*enter, "setpriv", f"--reuid={UID}", f"--regid={UID}", "--init-groups", "--reset-env",
                "bash", "-lc", f"cd ~ || exit 1; {script}"]

    def exec(self, host: str, cmd: list[str] | str, root: bool = False, capture: bool = False, check: bool = False,
             timeout: float | None = None, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(host, cmd, root), text=True, capture_output=capture, check=check,
                              timeout=timeout, input=input,
                              preexec_fn=lambda: cgroups.join(self.name, host))

    # ---- down ----
    def down(self, echo=print) -> None:
        require_root("down")
        leftovers = self.dir.exists() or network.namespaces(self.name) or cgroups.pids(self.name)
        if not leftovers:
            echo(f"sandbox '{self.name}' is not up; nothing to do")
            return
        started = time.monotonic()
        for outer in (self.state() or {}).get("hosts", {}).values():
            try:
                os.kill(outer, signal.SIGKILL)
            except ProcessLookupError:
                pass
        cgroups.kill_all(self.name)
        cgroups.remove(self.name)
        network.delete(self.name)
        if self.scratch.is_mount():
            run(["umount", str(self.scratch)], timeout=120)  # a loop mount detaches its device
        if self.dir.exists():
            run(["rm", "-rf", "--one-file-system", str(self.dir)], timeout=300)
        echo(f"sandbox '{self.name}' down in {time.monotonic() - started:.1f} s; nothing left")

    def leftovers(self) -> list[str]:
        """Anything of this sandbox still on the machine (empty after a clean down)."""
        found = []
        if self.dir.exists():
            found.append(f"state directory {self.dir}")
        found += [f"network namespace {ns}" for ns in network.namespaces(self.name)]
        found += [f"process {p}" for p in cgroups.pids(self.name)]
        found += [f"cgroup {h}/ksi-sandbox/{self.name}" for h in cgroups.HIERARCHIES
                  if (cgroups.ROOT / h / cgroups.base(self.name)).exists()]
        mounts = Path("/proc/self/mountinfo").read_text()
        if str(self.dir) in mounts:
            found.append(f"mounts under {self.dir}")
        return found
