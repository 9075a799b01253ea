"""Expand Slurm host lists such as `gpu[01-04,07],cpu[1-2]` (fallback when scontrol is absent)."""

from __future__ import annotations

import itertools
import re

from ksi_multi.errors import KsiError

_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


def _split_top_level(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise KsiError(f"bad Slurm host list {text!r}: unbalanced ']'")
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise KsiError(f"bad Slurm host list {text!r}: unbalanced '['")
    parts.append(text[start:])
    return [p for p in (p.strip() for p in parts) if p]


def _expand_ranges(body: str, whole: str) -> list[str]:
    out = []
    for item in body.split(","):
        m = _RANGE.match(item.strip())
        if not m:
            raise KsiError(f"bad Slurm host list {whole!r}: cannot read range {item!r}")
        low, high = m.group(1), m.group(2) or m.group(1)
        if int(high) < int(low):
            raise KsiError(f"bad Slurm host list {whole!r}: range {item!r} runs backwards")
        width = len(low) if low.startswith("0") else 0
        out.extend(str(n).zfill(width) for n in range(int(low), int(high) + 1))
    return out


def _expand_one(pattern: str) -> list[str]:
    pieces: list[list[str]] = []
    for literal, body in re.findall(r"([^\[]*)(?:\[([^\]]*)\])?", pattern):
        if literal:
            pieces.append([literal])
        if body:
            pieces.append(_expand_ranges(body, pattern))
    return ["".join(combo) for combo in itertools.product(*pieces)]


def expand(hostlist: str) -> list[str]:
    """Return the host names of a Slurm host list, in order, without duplicates."""
    seen: dict[str, None] = {}
    for pattern in _split_top_level(hostlist):
        for host in _expand_one(pattern):
            seen.setdefault(host, None)
    return list(seen)
