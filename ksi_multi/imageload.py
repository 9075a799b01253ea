"""Images onto every node without a registry: archives written by `podman save` / `docker save`
(docker-archive or OCI archive) imported into the containerd of a node, the way `kind load image-archive`
does it. The login side checks the files and fans out with srun; each host imports into its own node.
"""

from __future__ import annotations

import json
import logging
import tarfile
from dataclasses import dataclass
from pathlib import Path

from ksi_multi.errors import KsiError
from ksi_multi.podman import PodmanHome
from ksi_multi.run import CommandError

log = logging.getLogger(__name__)

MAX_INDEX_BYTES = 4 << 20  # manifest.json / index.json of an image archive are small
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")
OCI_NAME_KEYS = ("io.containerd.image.name", "org.opencontainers.image.ref.name")


@dataclass(frozen=True)
class ArchiveInfo:
    path: Path
    kind: str  # "docker-archive" or "oci-archive"
    names: tuple[str, ...]  # the image names it carries (may be empty: untagged)


def inspect(path: Path) -> ArchiveInfo:
    """What image archive `path` is, read from its manifest; KsiError when it is not one."""
    fix = "give a file written by `podman save` or `docker save` (docker-archive or oci-archive)"
    if not path.is_file():
        raise KsiError(f"{path}: no such file", fix)
    try:
        with tarfile.open(path, "r:*") as tar:
            docker = oci = None
            for member in tar:
                if member.name in ("manifest.json", "./manifest.json") and member.isfile():
                    docker = _small_json(tar, member)
                elif member.name in ("index.json", "./index.json") and member.isfile():
                    oci = _small_json(tar, member)
                if docker is not None:
                    break
    except (tarfile.TarError, EOFError):
        raise KsiError(f"{path} is not an image archive (not a tar file, plain or compressed)", fix) from None
    except OSError as exc:
        raise KsiError(f"{path}: cannot read it: {exc.strerror or exc}", "check the path and its permissions") from None
    except ValueError as exc:
        raise KsiError(f"{path} is not an image archive ({exc})", fix) from None
    if isinstance(docker, list) and docker and all(isinstance(m, dict) and "Layers" in m for m in docker):
        names = tuple(t for m in docker for t in (m.get("RepoTags") or ()) if isinstance(t, str))
        return ArchiveInfo(path, "docker-archive", names)
    if isinstance(oci, dict) and isinstance(oci.get("manifests"), list):
        names = []
        for m in oci["manifests"]:
            notes = (m.get("annotations") or {}) if isinstance(m, dict) else {}
            name = next((notes[k] for k in OCI_NAME_KEYS if isinstance(notes.get(k), str)), None)
            if name:
                names.append(name)
        return ArchiveInfo(path, "oci-archive", tuple(names))
    raise KsiError(f"{path} is not an image archive (no manifest.json or index.json in it)", fix)


def _small_json(tar: tarfile.TarFile, member: tarfile.TarInfo):
    if member.size > MAX_INDEX_BYTES:
        raise ValueError(f"{member.name} is {member.size} bytes")
    return json.loads(tar.extractfile(member).read())


def name_warnings(info: ArchiveInfo) -> list[str]:
    """Names Kubernetes would try to pull (`:latest` or no tag), and archives without a name."""
    if not info.names:
        return [f"{info.path.name}: the image has no name; pods cannot refer to it: tag it "
                "(podman tag IMAGE NAME:VERSION) and save it again"]
    out = []
    for name in info.names:
        last = name.rsplit("/", 1)[-1]
        if "@" in last:
            continue
        if ":" not in last or last.endswith(":latest"):
            out.append(f"{name}: Kubernetes always pulls `:latest` (or untagged) images, and no registry is "
                       "reachable: tag it with a version (podman tag) or set imagePullPolicy: IfNotPresent")
    return out


def expand(entries: list[Path]) -> list[Path]:
    """The `images` key: files as they are, directories as the archives directly in them."""
    found: list[Path] = []
    for entry in entries:
        entry = entry.expanduser()
        if entry.is_dir():
            found += sorted(p for p in entry.iterdir() if p.is_file() and p.name.endswith(ARCHIVE_SUFFIXES))
        else:
            found.append(entry)
    return found


def import_archives(home: PodmanHome, node_name: str, paths: list[Path], timeout: float = 1800) -> tuple[str, ...]:
    """Import archives (checked by `inspect` beforehand) into the node's containerd, Kubernetes' namespace;
    return the image names imported. Only the unpacked snapshots stay: the layers' compressed copies would
    double what every node writes and what its teardown deletes."""
    names: list[str] = []
    for path in paths:
        try:
            data = open(path, "rb")
        except OSError as exc:
            raise KsiError(f"{path}: cannot read it on this host: {exc.strerror}",
                           "archives must be on storage every node reads (not /tmp)") from None
        with data:
            try:
                proc = home.podman("exec", "-i", node_name, "ctr", "--namespace", "k8s.io", "images", "import",
                                   "--discard-unpacked-layers", "-", stdin=data, timeout=timeout)
            except CommandError as exc:
                raise KsiError(f"importing {path.name} into {node_name} failed: {exc.cause}",
                               "check the archive (podman load -i it) and the node (ksi-multi status)") from None
        names += [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("unpacking ")]
    return tuple(names)


@dataclass(frozen=True)
class NodeResult:
    host: str
    images: tuple[str, ...] = ()
    seconds: float = 0.0
    error: str = ""

    def to_json(self) -> str:
        return json.dumps({"host": self.host, "images": list(self.images), "seconds": round(self.seconds, 2),
                           "error": self.error})


RESULT_MARK = "ksi-multi-import: "


def parse_results(stdout: str) -> dict[str, NodeResult]:
    """The one result line each host printed (other lines are ignored)."""
    out = {}
    for line in stdout.splitlines():
        if not line.startswith(RESULT_MARK):
            continue
        try:
            data = json.loads(line[len(RESULT_MARK):])
            out[str(data["host"])] = NodeResult(str(data["host"]), tuple(map(str, data.get("images") or ())),
                                                float(data.get("seconds") or 0), str(data.get("error") or ""))
        except (ValueError, KeyError, TypeError):
            continue
    return out
