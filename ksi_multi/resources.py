"""Files the package reads at run time, found through importlib.resources: an installed wheel carries
every one of them (tests/integration/test_install.py checks the wheel against this list)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ksi_multi.errors import KsiError

# Every file or directory below the ksi_multi package that the code opens, builds from or hands to
# another program. Code asks for them only through `path()`, which refuses names not listed here.
DATA = (
    "templates",  # jinja2 templates and the batch script
    "image/k8s",  # the Kubernetes build recipe: wrapper modules, build script, pause.c
    "image/liqowrap",  # the Go module that pins the Liqo build
    "image/node-files",  # units and configuration copied into the node image
    "image/workload-files",  # entrypoints of the workload images
    "helpers",  # Go sources of the helpers run on every host (ksi-wg)
    "bench/probe.py",  # the latency probe `ksi-multi bench` runs as `python3 -c` on hosts and in pods
    "manifests",  # what users apply to a job's cluster (Dask, Spark RBAC), printed by `ksi-multi manifest`
    "sandbox/hostinit.sh",
    "sandbox/services.sh",
    "sandbox/xnode.sh",
)


def registered(name: str) -> bool:
    return any(name == d or name.startswith(d + "/") for d in DATA)


def path(name: str) -> Path:
    """The real path of a packaged file or directory (programs such as go and bash need one)."""
    if not registered(name):
        raise ValueError(f"{name!r} is not in ksi_multi.resources.DATA")
    found = resources.files("ksi_multi").joinpath(name)
    if not isinstance(found, Path):
        raise KsiError(f"ksi-multi is installed in a form that has no files on disk ({found})",
                       "install it unpacked: pip install ksi-multi (not as a zip)")
    if not found.exists():
        raise KsiError(f"the installed ksi-multi lacks {name} ({found})",
                       "reinstall it from a complete wheel or checkout: pip install --force-reinstall ksi-multi")
    return found
