"""iperf3 for the hosts themselves, taken from the toolbox userland: `ksi-multi bench` measures the hosts'
own network with the same iperf3 the pods use, on hosts that may have none installed (and no root to
install one). The binary runs with its own libraries through the userland's dynamic loader."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from ksi_multi.errors import KsiError
from ksi_multi.run import output

LIBDIR = "usr/lib/x86_64-linux-gnu"
LOADER = "ld-linux-x86-64.so.2"
WRAPPER = """#!/bin/sh
# iperf3 from the toolbox image, with its own libraries (written by `ksi-multi image build`)
here=$(dirname "$(readlink -f "$0")")/.iperf3
exec "$here/{loader}" --library-path "$here" "$here/iperf3" "$@"
"""


def libraries(root: Path, binary: Path) -> list[Path]:
    """The shared libraries `binary` loads, resolved inside the userland `root` by its own loader."""
    loader = root / LIBDIR / LOADER
    listed = output([str(loader), "--library-path", str(root / LIBDIR), "--list", str(binary)])
    found = [Path(m) for m in re.findall(r"=> (/\S+)", listed)]
    outside = [p for p in found if not p.is_relative_to(root)]
    if outside or not found:
        raise KsiError(f"image build: {binary.name} in {root} needs libraries from outside it: {outside or listed}",
                       "rebuild the toolbox userland (remove its cache directory)")
    return found


def bundle_iperf3(root: Path, out_dir: Path) -> Path:
    """out_dir/iperf3 (a wrapper) and out_dir/.iperf3/ (binary, libraries, loader); returns the wrapper."""
    binary = root / "usr/bin/iperf3"
    files = out_dir / ".iperf3"
    shutil.rmtree(files, ignore_errors=True)
    files.mkdir(parents=True)
    for path in [binary, *libraries(root, binary)]:
        shutil.copy2(path.resolve(), files / path.name)
    wrapper = out_dir / "iperf3"
    tmp = wrapper.with_suffix(".tmp")
    tmp.write_text(WRAPPER.format(loader=LOADER))
    tmp.chmod(0o755)
    os.replace(tmp, wrapper)
    output([str(wrapper), "--version"])  # it runs here, on the build host, or the build fails now
    return wrapper
