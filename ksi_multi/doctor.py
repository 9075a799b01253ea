"""Prerequisite checks for one host. Each check is a pure function of facts gathered separately,
so the same checks are fed real facts by `ksi-multi doctor` and fabricated ones by the tests."""

from __future__ import annotations

import dataclasses
import errno
import getpass
import json
import os
import pwd
import re
import shutil
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from ksi_multi import ports, scratch
from ksi_multi.cgroups import V1
from ksi_multi.config import Config
from ksi_multi.image import golang
from ksi_multi.podman import PodmanHome
from ksi_multi.ranges import Ranges
from ksi_multi.run import CommandError, output
from netplugins import OVERHEAD

MIN_PODMAN = (4, 4)
MIN_SUBIDS = 65536
MIN_SCRATCH_GIB = 10


@dataclass(frozen=True)
class Result:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    blocking: bool = True

    @property
    def status(self) -> str:
        return "ok" if self.ok else ("FAIL" if self.blocking else "warn")


def _ok(name: str, detail: str) -> Result:
    return Result(name, True, detail)


def _version(text: str) -> tuple[int, ...] | None:
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    return tuple(int(g) for g in m.groups() if g is not None) if m else None


def check_podman(version_text: str | None, rootless_info: str | None, error: str = "") -> Result:
    name = "podman"
    if version_text is None:
        return Result(name, False, "podman is not installed", "install podman >= 4.4 (Debian/Ubuntu: apt install podman)")
    version = _version(version_text)
    if version is None or version[:2] < MIN_PODMAN:
        return Result(name, False, f"{version_text.strip()} is too old",
                      "install podman >= 4.4 (it brings --network=pasta)")
    if rootless_info is None:
        return Result(name, False, f"rootless podman does not work: {error.strip()[:200]}",
                      "check user namespaces and subuid/subgid (below), then run `podman info`")
    try:
        rootless = json.loads(rootless_info).get("host", {}).get("security", {}).get("rootless")
    except json.JSONDecodeError:
        rootless = None
    if rootless is not True:
        return Result(name, False, "podman does not run rootless for this user", "run ksi-multi as your own user, not root")
    return _ok(name, f"{'.'.join(map(str, version))}, rootless")


def check_net_helper(tool: str, present: bool, selected: bool) -> Result:
    if present:
        return _ok(tool, "installed" + (" (selected)" if selected else ""))
    package = "passt" if tool == "pasta" else tool
    return Result(tool, False, "not installed", f"install {package} (apt install {package})", blocking=selected)


def subid_count(text: str, user: str, uid: int) -> int:
    """Total subordinate ids granted to the user in /etc/subuid or /etc/subgid text."""
    total = 0
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[0] in (user, str(uid)) and parts[2].isdigit():
            total += int(parts[2])
    return total


def check_subids(kind: str, text: str | None, user: str, uid: int) -> Result:
    name = f"sub{kind}"
    count = subid_count(text or "", user, uid)
    if count >= MIN_SUBIDS:
        return _ok(name, f"{count} ids for {user}")
    return Result(name, False, f"{count} subordinate {kind}s for {user} (need {MIN_SUBIDS})",
                  f"ask an admin: usermod --add-sub{kind}s 100000-165535 {user}")


def check_userns(max_namespaces: str | None, unprivileged_clone: str | None, apparmor_restrict: str | None) -> Result:
    name = "user namespaces"
    if max_namespaces is not None and max_namespaces.strip() == "0":
        return Result(name, False, "user.max_user_namespaces is 0", "ask an admin: sysctl user.max_user_namespaces=15000")
    if unprivileged_clone is not None and unprivileged_clone.strip() == "0":
        return Result(name, False, "kernel.unprivileged_userns_clone is 0",
                      "ask an admin: sysctl kernel.unprivileged_userns_clone=1")
    if apparmor_restrict is not None and apparmor_restrict.strip() == "1":
        return Result(name, False, "AppArmor restricts unprivileged user namespaces",
                      "ask an admin: sysctl kernel.apparmor_restrict_unprivileged_userns=0 or an AppArmor profile for podman")
    return _ok(name, f"allowed (max {max_namespaces.strip() if max_namespaces else '?'})")


def check_tun(open_error: int | None) -> Result:
    name = "/dev/net/tun"
    if open_error is None:
        return _ok(name, "usable")
    reason = os.strerror(open_error)
    return Result(name, False, f"cannot open /dev/net/tun: {reason}",
                  "ask an admin to load the tun module and make /dev/net/tun mode 0666")


def check_cgroups(version: int, delegated: str | None, tried: list[str]) -> Result:
    name = "cgroup delegation"
    if delegated:
        return _ok(name, f"v{version}, delegated subtree {delegated}")
    where = ", ".join(tried) or "nothing to try"
    fix = ("ask an admin for a delegated subtree: systemd Delegate=yes for user@.service" if version == 2 else
           "ask an admin to create <hierarchy>/ksi-multi/<user> in every cgroup v1 hierarchy, owned by you "
           "(see docs/admins.md), or set cgroup_parent")
    return Result(name, False, f"v{version}, no writable delegated subtree (tried {where})", fix)


def check_scratch(path: Path, fstype: str | None, error: str, free_gib: float | None) -> Result:
    name = "node-local storage"
    if error:
        return Result(name, False, error, "set scratch (or $TMPDIR) to a node-local directory you can write")
    if free_gib is not None and free_gib < MIN_SCRATCH_GIB:
        return Result(name, False, f"{path} ({fstype}) has only {free_gib:.1f} GiB free (want {MIN_SCRATCH_GIB})",
                      "free space or point scratch at a larger local disk", blocking=False)
    return _ok(name, f"{path} ({fstype}, {free_gib:.0f} GiB free)")


def check_port(proto: str, port: int, purpose: str, bind_error: int | None) -> Result:
    if port == 0:
        return _ok(f"{purpose} ({proto})", "a free port chosen per job")
    name = f"port {port}/{proto}"
    if bind_error is None:
        return _ok(name, f"free ({purpose})")
    if bind_error == errno.EADDRINUSE:
        return Result(name, False, f"in use ({purpose})",
                      f"another job or service holds it; set {purpose} to a free port")
    return Result(name, False, f"cannot bind: {os.strerror(bind_error)} ({purpose})", f"set {purpose} to another port")


def check_ranges(ranges: Ranges, host_networks: list[tuple[str, str]]) -> Result:
    name = "address ranges"
    clashes = ranges.clashes_with(host_networks)
    if clashes:
        return Result(name, False, "; ".join(clashes),
                      "choose ranges this site does not use: set pod_subnet, service_subnet, mesh_subnet or "
                      "node_subnet (docs/usage.md, Configuration)")
    return _ok(name, ", ".join(f"{k.removesuffix('_subnet')} {v}" for k, v in ranges.named().items()))


def host_networks() -> list[tuple[str, str]]:
    """This host's IPv4 networks: its interfaces' addresses and its routes (loopback left out)."""
    out = [(f"{name}'s address {a.address}", f"{a.address}/{a.netmask}")
           for name, addrs in psutil.net_if_addrs().items() if name != "lo"
           for a in addrs if a.family == socket.AF_INET and a.netmask]
    for line in (_read("/proc/net/route") or "").splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8 or fields[0] == "lo":
            continue
        dest, mask = (socket.inet_ntoa(int(x, 16).to_bytes(4, "little")) for x in (fields[1], fields[7]))
        out.append((f"a route via {fields[0]}", f"{dest}/{mask}"))
    return out


def check_mesh_mtu(mesh: str, mesh_mtu: int, path_mtu: int) -> Result:
    name = "mesh MTU"
    largest = path_mtu - OVERHEAD[mesh]
    if not mesh_mtu:
        return _ok(name, f"{largest} (path MTU {path_mtu} minus {mesh}'s {OVERHEAD[mesh]})")
    if mesh_mtu > largest:
        return Result(name, False, f"mesh_mtu {mesh_mtu} does not fit the path MTU {path_mtu} minus {mesh}'s overhead "
                      f"{OVERHEAD[mesh]}: packets would be dropped",
                      f"set mesh_mtu to at most {largest}, or 0 to derive it")
    return _ok(name, f"{mesh_mtu} (set; at most {largest})")


def check_go(found: tuple[int, int] | None) -> Result:
    name = "go (image build)"
    why = golang.problem(found)
    if why:
        return Result(name, False, why, golang.FIX)
    return _ok(name, f"{found[0]}.{found[1]}")


def check_c_compiler(gcc: bool, static_libc: bool) -> Result:
    name = "C compiler (image build)"
    if not gcc:
        return Result(name, False, "gcc is not installed (pause and the helpers are static C/cgo)",
                      "apt install gcc libc6-dev")
    if not static_libc:
        return Result(name, False, "no static C library (libc.a)", "apt install libc6-dev")
    return _ok(name, "gcc with a static libc")


def check_bootstrap(mmdebstrap: bool, debootstrap: bool, root: bool, newuidmap: bool, subuids: int) -> Result:
    """Debian userlands come from mmdebstrap (as a user: its unshare mode, which needs sub-ids) or debootstrap."""
    name = "mmdebstrap (image build)"
    if root and (mmdebstrap or debootstrap):
        return _ok(name, "mmdebstrap" if mmdebstrap else "debootstrap (as root)")
    if not mmdebstrap:
        return Result(name, False, "neither mmdebstrap nor (as root) debootstrap is installed",
                      "apt install mmdebstrap (or build the images on a machine that has it and copy the archives)")
    if not newuidmap:
        return Result(name, False, "mmdebstrap's unshare mode needs newuidmap", "apt install uidmap")
    if subuids < MIN_SUBIDS:
        return Result(name, False, f"mmdebstrap's unshare mode needs {MIN_SUBIDS} subordinate ids ({subuids} granted)",
                      "ask an admin for /etc/subuid and /etc/subgid entries (see the subuid check)")
    return _ok(name, "mmdebstrap, unshare mode")


# ---- gatherers: read the real host ----


def path_mtu(address: str) -> int:
    """MTU of the host interface that carries `address` (the mesh's packets leave through it)."""
    stats = psutil.net_if_stats()
    for name, addrs in psutil.net_if_addrs().items():
        if any(a.address == address for a in addrs) and name in stats:
            return stats[name].mtu
    return 1500

def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def gather_podman(work: Path) -> Result:
    if not shutil.which("podman"):
        return check_podman(None, None)
    home = PodmanHome(work)
    try:
        version = home.podman("--version", timeout=30).stdout
    except CommandError as exc:
        return check_podman(None, None, str(exc))
    try:
        return check_podman(version, home.podman("info", "--format", "json", timeout=60).stdout)
    except CommandError as exc:
        return check_podman(version, None, exc.stderr or str(exc))
    finally:
        home.remove()


def _tun_error() -> int | None:
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR)
    except OSError as exc:
        return exc.errno
    os.close(fd)
    return None


def delegated_cgroup(parent: str, user: str, root: Path = Path("/sys/fs/cgroup")) -> tuple[int, str | None, list[str]]:
    """Find the delegated subtree: (cgroup version, path relative to hierarchy roots or None, paths tried)."""
    if (root / "cgroup.controllers").exists():
        own = next((line.split("::", 1)[1] for line in (_read("/proc/self/cgroup") or "").splitlines()
                    if line.startswith("0::")), "/")
        candidates = [parent] if parent != "auto" else [own.strip()]
        for rel in candidates:
            path = root / rel.lstrip("/")
            if os.access(path / "cgroup.procs", os.W_OK):
                return 2, rel, [str(path)]
        return 2, None, [str(root / c.lstrip("/")) for c in candidates]
    rel = f"ksi-multi/{user}" if parent == "auto" else parent.strip("/")
    present = [c for c in V1 if (root / c).is_dir()]
    tried = [str(root / c / rel) for c in present]
    if present and all(os.access(root / c / rel / "cgroup.procs", os.W_OK) for c in present):
        return 1, rel, tried
    return 1, None, tried


def diagnose(config: Config, address: str = "0.0.0.0", coordinator: bool = True) -> list[Result]:
    user = getpass.getuser()
    uid = os.getuid()
    results = []
    base = scratch.base_dir(config.scratch)
    fstype, error, free = None, "", None
    try:
        fstype = scratch.check_local(base)
        if not os.access(base, os.W_OK):
            error = f"{base} is not writable"
        usage = shutil.disk_usage(base)
        free = usage.free / 2**30
    except Exception as exc:  # a KsiError or an OSError, both reported the same way
        error = str(exc).splitlines()[0]
    results.append(check_scratch(base, fstype, error, free))
    results.append(gather_podman(Path(tempfile.mkdtemp(prefix=f"ksi-multi-doctor-{uid}-",
                                                       dir=base if not error else None))))
    for tool in ("pasta", "slirp4netns"):
        results.append(check_net_helper(tool, shutil.which(tool) is not None, config.net_backend == tool))
    name = pwd.getpwuid(uid).pw_name if uid else user
    results.append(check_subids("uid", _read("/etc/subuid"), name, uid))
    results.append(check_subids("gid", _read("/etc/subgid"), name, uid))
    results.append(check_userns(_read("/proc/sys/user/max_user_namespaces"),
                                _read("/proc/sys/kernel/unprivileged_userns_clone"),
                                _read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")))
    results.append(check_tun(_tun_error()))
    results.append(check_cgroups(*delegated_cgroup(config.cgroup_parent, name)))
    results.append(check_port("udp", config.mesh_port, "mesh_port", ports.bind_error("udp", address, config.mesh_port)))
    results.append(check_mesh_mtu(config.mesh, config.mesh_mtu, path_mtu(address)))
    results.append(check_ranges(Ranges.of(config), host_networks()))
    if coordinator:
        results.append(check_port("tcp", config.api_server_port, "api_server_port",
                                  ports.bind_error("tcp", address, config.api_server_port)))
    return results


def diagnose_build(blocking: bool = True) -> list[Result]:
    """What `ksi-multi image build` needs on the machine that runs it (usually the login node)."""
    uid = os.getuid()
    user = pwd.getpwuid(uid).pw_name
    static_libc = False
    if shutil.which("gcc"):
        try:
            static_libc = Path(output(["gcc", "-print-file-name=libc.a"], timeout=30)).is_absolute()
        except CommandError:
            pass
    results = [check_go(golang.version()), check_c_compiler(shutil.which("gcc") is not None, static_libc),
               check_bootstrap(shutil.which("mmdebstrap") is not None, shutil.which("debootstrap") is not None,
                               uid == 0, shutil.which("newuidmap") is not None,
                               min(subid_count(_read("/etc/subuid") or "", user, uid),
                                   subid_count(_read("/etc/subgid") or "", user, uid)))]
    return results if blocking else [dataclasses.replace(r, blocking=False) for r in results]


def failures(results: list[Result]) -> list[Result]:
    return [r for r in results if not r.ok and r.blocking]


def table(results: list[Result], echo: Callable[[str], None]) -> None:
    width = max(len(r.name) for r in results)
    for r in results:
        echo(f"{r.status:>4}  {r.name:<{width}}  {r.detail}")
    for r in results:
        if not r.ok:
            echo(f"  {r.name}: {r.fix}")

