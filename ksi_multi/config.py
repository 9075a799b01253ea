"""One typed configuration: YAML file < KSI_* environment variables < command-line flags."""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from ksi_multi import ranges
from ksi_multi.errors import ConfigError
from netplugins import PLUGINS

ENV_PREFIX = "KSI_"
# Environment variables with the prefix that are not configuration keys.
ENV_RESERVED = {"KSI_CONFIG"}
DEFAULT_FILE = Path("~/.ksi-multi/config.yaml")


def _choice(*allowed: str):
    def check(value: str) -> str | None:
        return None if value in allowed else f"must be one of: {', '.join(allowed)}"
    return check


def _port(allow_zero: bool):
    def check(value: int) -> str | None:
        if allow_zero and value == 0:
            return None
        if 1024 <= value <= 65535:
            return None
        low = "0 (any free port) or " if allow_zero else ""
        return f"must be {low}an unprivileged port between 1024 and 65535"
    return check


def _mtu(value: int) -> str | None:
    return None if value == 0 or 1280 <= value <= 65000 else "must be 0 (from the path MTU) or between 1280 and 65000"


def _range(key: str):
    return lambda value: ranges.check(key, value)


def _positive(value: float) -> str | None:
    return None if value > 0 else "must be greater than 0"


def _not_negative(value: int) -> str | None:
    return None if value >= 0 else "must be 0 or more"


def _absolute(value: Path | None) -> str | None:
    return None if value is None or value.is_absolute() else "must be an absolute path"


def _all_absolute(value: tuple[Path, ...]) -> str | None:
    relative = [str(p) for p in value if not p.is_absolute()]
    return f"must be absolute paths (the agents run elsewhere): {', '.join(relative)}" if relative else None


def _key(check=None, help: str = ""):
    return {"check": check, "help": help}


@dataclass(frozen=True)
class Config:
    net_backend: str = field(default="pasta", metadata=_key(
        _choice("pasta", "slirp4netns"), "network helper for the rootless node container"))
    egress: str = field(default="proxy", metadata=_key(
        _choice("proxy", "helper"),
        "how TCP from pods leaves the cluster: proxy (ksi-proxy on the host, host speed) or helper (through "
        "the network helper, as pasta/slirp4netns forward it)"))
    api_server_port: int = field(default=0, metadata=_key(
        _port(True), "host port on rank 0 forwarded to the Kubernetes API server (it is in the kubeconfig); 0 picks "
        "a free one per job"))
    mesh: str = field(default="wireguard", metadata=_key(
        _choice(*PLUGINS),
        "how the nodes are joined: wireguard (UDP on a host socket), wireguard-forwarded (all inside the node, "
        "UDP forwarded by the network helper), vxlan (unencrypted kernel overlay, UDP forwarded), plain (unencrypted, "
        "UDP on a host socket: trusted networks only)"))
    federation: str = field(default="none", metadata=_key(
        _choice("none", "liqo"),
        "none: one Kubernetes cluster over the mesh; liqo: one single-node cluster per host, rank 0's peered with "
        "every other through Liqo (needs `ksi-multi image build --liqo`)"))
    mesh_port: int = field(default=0, metadata=_key(
        _port(True), "UDP port of the node mesh on every host; 0 picks a free one per job and host (set one where a "
        "firewall opens only that port)"))
    mesh_mtu: int = field(default=0, metadata=_key(
        _mtu, "MTU inside the mesh; 0 derives it from the host interface's MTU minus the mesh's overhead"))
    pod_subnet: str = field(default=ranges.KEYS["pod_subnet"][0], metadata=_key(
        _range("pod_subnet"), ranges.KEYS["pod_subnet"][3]))
    service_subnet: str = field(default=ranges.KEYS["service_subnet"][0], metadata=_key(
        _range("service_subnet"), ranges.KEYS["service_subnet"][3]))
    mesh_subnet: str = field(default=ranges.KEYS["mesh_subnet"][0], metadata=_key(
        _range("mesh_subnet"), ranges.KEYS["mesh_subnet"][3]))
    node_subnet: str = field(default=ranges.KEYS["node_subnet"][0], metadata=_key(
        _range("node_subnet"), ranges.KEYS["node_subnet"][3]))
    rendezvous_port: int = field(default=0, metadata=_key(
        _port(True), "TCP port of the rank-0 rendezvous; 0 picks a free one"))
    rendezvous_timeout: float = field(default=300.0, metadata=_key(
        _positive, "seconds to wait for every node to register"))
    jobs_dir: Path = field(default=Path("~/.ksi-multi/jobs"), metadata=_key(
        None, "per-job directories on the shared filesystem"))
    scratch: Path | None = field(default=None, metadata=_key(
        _absolute, "node-local scratch directory (default: $TMPDIR or /tmp)"))
    image: str = field(default="", metadata=_key(
        None, "node image; empty: the one `ksi-multi image build` wrote to image_dir"))
    image_dir: Path = field(default=Path("~/.ksi-multi/images"), metadata=_key(
        None, "image archives on shared storage, read by every node (the node image through each host's image "
        "cache)"))
    image_cache: int = field(default=2, metadata=_key(
        _not_negative, "node images kept on each host's scratch between your jobs (loaded once, not per job); the "
        "least recently used go first; 0: none, every job loads its own copy"))
    image_cache_dir: Path | None = field(default=None, metadata=_key(
        _absolute, "where the node image cache lives (default: <scratch>/ksi-multi-<uid>/image-cache, on each "
        "host); a directory every host of yours sees gives all of them one copy, if overlayfs can read it"))
    images: tuple[Path, ...] = field(default=(), metadata=_key(
        _all_absolute, "image archives (docker-archive or OCI archive files, or directories of them) on shared "
        "storage that every node imports at boot, before the job is ready; a list, or comma-separated"))
    node_timeout: float = field(default=180.0, metadata=_key(
        _positive, "seconds for the node container to boot (systemd, containerd, preloaded images)"))
    ready_timeout: float = field(default=300.0, metadata=_key(
        _positive, "seconds for every node to become Ready after kubeadm"))
    cgroup_parent: str = field(default="auto", metadata=_key(
        None, "delegated cgroup subtree, relative to each hierarchy root; auto finds it"))
    log_level: str = field(default="info", metadata=_key(_choice("debug", "info", "warning", "error"), "log verbosity"))

    def jobs_path(self) -> Path:
        return self.jobs_dir.expanduser()


KEYS = {f.name: f for f in fields(Config)}


def as_flag(value: Any) -> str:
    """A value as its --flag takes it (the reverse of the coercion below): lists comma-separated."""
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def as_data(config: Config) -> dict[str, Any]:
    """Every key's value as YAML writes it and `load` reads it back to the same Config."""
    out: dict[str, Any] = {}
    for name in KEYS:
        value = getattr(config, name)
        if isinstance(value, tuple):
            value = [str(v.expanduser()) for v in value]
        elif isinstance(value, Path):
            value = str(value.expanduser())
        elif value is None:
            value = ""
        out[name] = value
    return out


def _coerce(name: str, raw: Any, source: str) -> Any:
    kind = KEYS[name].type
    try:
        if kind == "int":
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError
            return int(raw)
        if kind == "float":
            if isinstance(raw, bool):
                raise ValueError
            return float(raw)
        if kind == "tuple[Path, ...]":
            items = raw.split(",") if isinstance(raw, str) else raw
            if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
                raise ValueError
            return tuple(Path(i.strip()).expanduser() for i in items if i.strip())
        if kind in ("Path", "Path | None"):
            if raw is None or raw == "":
                if kind == "Path":
                    raise ValueError
                return None
            return Path(str(raw)).expanduser()
        if not isinstance(raw, (str, int, float)) or isinstance(raw, bool):
            raise ValueError
        return str(raw)
    except (TypeError, ValueError):
        want = {"int": "a whole number", "float": "a number", "Path": "a path", "Path | None": "a path",
                "tuple[Path, ...]": "a list of paths"}.get(kind, "a string")
        raise ConfigError(f"config: {name}: {raw!r} ({source}) is not {want}",
                          f"set {name} to {want} ({KEYS[name].metadata['help']})") from None


def _unknown(name: str, source: str) -> ConfigError:
    close = difflib.get_close_matches(name, KEYS, n=1)
    fix = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(KEYS)}"
    return ConfigError(f"config: unknown key '{name}' ({source})", fix)


def _from_file(path: Path) -> dict[str, tuple[Any, str]]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"config: cannot read {path}: {exc.strerror}",
                          "check the path given with --config or KSI_CONFIG") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config: {path} is not valid YAML: {str(exc).splitlines()[0]}", "fix the YAML syntax") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config: {path} must hold a mapping of keys to values", "write `key: value` lines")
    source = f"in {path}"
    out = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in KEYS:
            raise _unknown(str(key), source)
        out[name] = (value, source)
    return out


def _from_env(env: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    out = {}
    for var, value in env.items():
        if not var.startswith(ENV_PREFIX) or var in ENV_RESERVED:
            continue
        name = var[len(ENV_PREFIX):].lower()
        if name not in KEYS:
            raise _unknown(name, f"from environment variable {var}")
        out[name] = (value, f"from {var}")
    return out


def config_file(explicit: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path | None:
    if explicit:
        return Path(explicit).expanduser()
    if env.get("KSI_CONFIG"):
        return Path(env["KSI_CONFIG"]).expanduser()
    default = DEFAULT_FILE.expanduser()
    return default if default.exists() else None


def load(file: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None,
         flags: Mapping[str, Any] | None = None) -> Config:
    """Merge the three sources (later wins), coerce types and validate every value."""
    env = os.environ if env is None else env
    layers: dict[str, tuple[Any, str]] = {}
    path = config_file(file, env)
    if path is not None:
        layers.update(_from_file(path))
    layers.update(_from_env(env))
    for name, value in (flags or {}).items():
        if value is None:
            continue
        if name not in KEYS:
            raise _unknown(name, "from the command line")
        layers[name] = (value, f"from --{name.replace('_', '-')}")
    values = {}
    for name, (raw, source) in layers.items():
        value = _coerce(name, raw, source)
        check = KEYS[name].metadata["check"]
        problem = check(value) if check else None
        if problem:
            raise ConfigError(f"config: {name}: {raw!r} ({source}) {problem}",
                              f"set {name} to a valid value ({KEYS[name].metadata['help']})")
        values[name] = value
    config = dataclasses.replace(Config(), **values)
    _check_combinations(config)
    return config


def _check_combinations(config: Config) -> None:
    if config.api_server_port and config.api_server_port == config.rendezvous_port:
        raise ConfigError(
            f"config: api_server_port and rendezvous_port are both {config.api_server_port}",
            "give the rendezvous another port, or 0 to pick a free one")
    overlaps = ranges.Ranges.of(config).overlapping()
    if overlaps:
        raise ConfigError(f"config: address ranges overlap: {'; '.join(overlaps)}",
                          "give each of pod_subnet, service_subnet, mesh_subnet and node_subnet a range of its own")
