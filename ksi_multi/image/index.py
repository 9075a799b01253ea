"""images.json: what `ksi-multi image build` wrote next to the archives (tags, image ids, helpers)."""

from __future__ import annotations

import json
from pathlib import Path

INDEX = "images.json"


def read(image_dir: Path) -> dict | None:
    """The index in image_dir, or None when no images were built there."""
    index = image_dir / INDEX
    return json.loads(index.read_text()) if index.exists() else None


def helper_paths(image_dir: Path) -> dict[str, Path]:
    """The host helpers built next to the archives, by name (ksi-wg, ...)."""
    index = read(image_dir) or {}
    return {name: image_dir / entry["file"] for name, entry in index.get("helpers", {}).items()}


def describe(image_dir: Path) -> list[str]:
    """What the images in image_dir are, for `ksi-multi --version`."""
    try:
        index = read(image_dir)
    except (OSError, ValueError) as exc:
        return [f"images: cannot read {image_dir / INDEX}: {exc}"]
    if index is None:
        return [f"images: none built in {image_dir} (ksi-multi image build)"]
    lines = [f"images in {image_dir} (built by ksi-multi {index.get('ksi_multi', '?')}):",
             f"  kubernetes  {index.get('kubernetes', '?')}"]
    for role in ("node", "toolbox"):
        entry = index.get(role) or {}
        lines.append(f"  {role:<10}  {entry.get('tag', '?')}  {entry.get('id', '(no image id recorded)')}")
    for name, entry in sorted(index.get("workloads", {}).items()):
        lines.append(f"  {name:<10}  {entry.get('tag', '?')}  {entry.get('id', '?')}  {entry.get('archive', '')}")
    if index.get("liqo"):
        lines.append(f"  {'liqo':<10}  {index['liqo'].get('version', '?')}  {index['liqo'].get('archive', '')}  "
                     f"{index['liqo'].get('liqoctl', '')}")
    for name, entry in sorted(index.get("helpers", {}).items()):
        lines.append(f"  {name:<10}  {entry.get('file', name)}  sha256:{entry.get('sha256', '?')}")
    return lines
