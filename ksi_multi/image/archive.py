"""Write container images as docker-archive tarballs (what `podman load` and `ctr images import` read).

An image here is a list of layers, each a directory tree or a set of files, plus a small config.
Layers are written uncompressed with numeric owners kept, so a root filesystem keeps its system users.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

# Paths a root filesystem must not carry into a layer: the runtime provides them.
SKIP_TOP = {"proc", "sys", "dev", "run", "tmp"}
EPOCH = 0  # reproducible metadata: fixed timestamps in the image config


@dataclass
class Layer:
    """A directory tree (`root`), and/or single files (path in image -> (host path, mode)) and symlinks."""

    root: Path | None = None
    files: Mapping[str, tuple[Path, int]] = field(default_factory=dict)
    links: Mapping[str, str] = field(default_factory=dict)
    keep_empty_dirs: Iterable[str] = ("proc", "sys", "dev", "run", "tmp")


@dataclass
class ImageConfig:
    cmd: list[str] | None = None
    entrypoint: list[str] | None = None
    env: list[str] = field(default_factory=lambda: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
    stop_signal: str | None = None
    workdir: str = "/"
    labels: dict[str, str] = field(default_factory=dict)


class _HashingWriter(io.RawIOBase):
    def __init__(self, fh) -> None:
        self.fh = fh
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.fh.write(data)
        self.sha.update(data)
        self.size += len(data)
        return len(data)


def _write_layer(layer: Layer, out: Path) -> str:
    """Write one layer tar to `out`; return its sha256 (the diff id)."""
    with open(out, "wb") as fh:
        hashing = _HashingWriter(fh)
        with tarfile.open(fileobj=hashing, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            if layer.root is not None:
                _add_tree(tar, layer.root, layer.keep_empty_dirs)
            made: set[str] = set()
            for name, (src, mode) in sorted(layer.files.items()):
                _add_parents(tar, name, made)
                info = tar.gettarinfo(str(src), arcname=name.lstrip("/"))
                info.mode, info.uid, info.gid, info.uname, info.gname = mode, 0, 0, "root", "root"
                with open(src, "rb") as data:
                    tar.addfile(info, data)
            for name, target in sorted(layer.links.items()):
                _add_parents(tar, name, made)
                info = tarfile.TarInfo(name.lstrip("/"))
                info.type, info.linkname, info.mtime = tarfile.SYMTYPE, target, EPOCH
                tar.addfile(info)
    return hashing.sha.hexdigest()


def _add_parents(tar: tarfile.TarFile, name: str, made: set[str]) -> None:
    parts = Path(name.lstrip("/")).parts[:-1]
    for i in range(1, len(parts) + 1):
        d = "/".join(parts[:i])
        if d in made:
            continue
        made.add(d)
        info = tarfile.TarInfo(d)
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, EPOCH
        tar.addfile(info)


def _add_tree(tar: tarfile.TarFile, root: Path, keep_empty: Iterable[str]) -> None:
    keep_empty = set(keep_empty)
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir == ".":
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_TOP)
            for d in sorted(keep_empty):
                if (root / d).is_dir():
                    info = tar.gettarinfo(str(root / d), arcname=d)
                    tar.addfile(info)
        else:
            dirnames.sort()
        for name in sorted(dirnames) + sorted(filenames):
            path = os.path.join(dirpath, name)
            arc = os.path.normpath(os.path.join(rel_dir, name))
            info = tar.gettarinfo(path, arcname=arc)
            if info.isreg():
                with open(path, "rb") as data:
                    tar.addfile(info, data)
            else:
                tar.addfile(info)


def write(path: Path, tag: str, layers: list[Layer], config: ImageConfig) -> str:
    """Write a docker-archive for `tag` to `path` (atomically); return the image id (config digest)."""
    return write_many(path, layers, [(tag, config)])[0]


def write_many(path: Path, layers: list[Layer], images: list[tuple[str, ImageConfig]]) -> list[str]:
    """Write one docker-archive holding several images that share the same layers (each its own tag and
    config: entrypoint, labels); return their image ids in order."""
    tmp_dir = path.with_name(path.name + ".parts")
    tmp_dir.mkdir(parents=True, exist_ok=True)
    try:
        diff_ids = []
        for i, layer in enumerate(layers):
            diff_ids.append(_write_layer(layer, tmp_dir / f"layer{i}.tar"))
        configs = [_config_bytes(config, diff_ids) for _, config in images]
        ids = [hashlib.sha256(c).hexdigest() for c in configs]
        manifest = [{"Config": f"{image_id}.json", "RepoTags": [tag], "Layers": [f"{d}/layer.tar" for d in diff_ids]}
                    for image_id, (tag, _) in zip(ids, images, strict=True)]
        repositories: dict[str, dict[str, str]] = {}
        for tag, _ in images:
            repo, _, version = tag.rpartition(":")
            repositories.setdefault(repo, {})[version] = diff_ids[-1]
        partial = path.with_name(path.name + ".partial")
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as out:
            for image_id, conf_bytes in dict(zip(ids, configs, strict=True)).items():
                _add_bytes(out, f"{image_id}.json", conf_bytes)
            for i, d in enumerate(diff_ids):
                info = out.gettarinfo(str(tmp_dir / f"layer{i}.tar"), arcname=f"{d}/layer.tar")
                info.uid = info.gid = 0
                info.mtime = EPOCH
                with open(tmp_dir / f"layer{i}.tar", "rb") as data:
                    out.addfile(info, data)
            _add_bytes(out, "manifest.json", json.dumps(manifest).encode())
            _add_bytes(out, "repositories", json.dumps(repositories).encode())
        os.replace(partial, path)
        return ids
    finally:
        for f in tmp_dir.glob("*"):
            f.unlink()
        tmp_dir.rmdir()


def _config_bytes(config: ImageConfig, diff_ids: list[str]) -> bytes:
    conf = {
        "architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
        "config": {k: v for k, v in {
            "Cmd": config.cmd, "Entrypoint": config.entrypoint, "Env": config.env,
            "StopSignal": config.stop_signal, "WorkingDir": config.workdir, "Labels": config.labels or None,
        }.items() if v is not None},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{d}" for d in diff_ids]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "ksi-multi image build"} for _ in diff_ids],
    }
    return json.dumps(conf, sort_keys=True).encode()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, EPOCH
    tar.addfile(info, io.BytesIO(data))


def read_manifest(path: Path) -> list[dict]:
    with tarfile.open(path) as tar:
        return json.load(tar.extractfile("manifest.json"))


def image_id(path: Path) -> str:
    """The image id (config digest, hex) of a single-image docker-archive."""
    return read_manifest(path)[0]["Config"].removesuffix(".json").removeprefix("blobs/sha256/")
