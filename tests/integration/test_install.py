"""The package as users install it: a wheel (built from the sdist) in a fresh virtual environment, outside
the checkout, carries every file the package reads and builds the images from there."""

import json
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from ksi_multi import resources
from ksi_multi.sandbox.cluster import REPO

PACKAGE = REPO / "ksi_multi"


def _packaged_files() -> set[str]:
    """Every file of the checkout below a registered resource, as a path inside the wheel."""
    found = set()
    for name in resources.DATA:
        path = PACKAGE / name
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        assert files, f"{name} is registered but holds no file"
        found |= {f"ksi_multi/{p.relative_to(PACKAGE).as_posix()}" for p in files if "__pycache__" not in p.parts}
    return found


def test_wheel_and_sdist_carry_every_file_the_package_reads(dist):
    wheel = set(zipfile.ZipFile(dist.wheel).namelist())
    with tarfile.open(dist.sdist) as tar:
        top = tar.getnames()[0].split("/")[0]
        sdist = {n.removeprefix(top + "/") for n in tar.getnames()}
    wanted = _packaged_files()
    assert wanted - wheel == set()
    assert wanted - sdist == set()
    modules = {p.relative_to(REPO).as_posix() for d in ("ksi_multi", "netplugins") for p in (REPO / d).rglob("*.py")}
    assert modules - wheel == set()


@pytest.mark.root
def test_installed_wheel_builds_the_images_outside_the_checkout(installed, images):
    where = installed.python("import ksi_multi; print(ksi_multi.__file__)")
    assert where.startswith(str(installed.venv)) and not where.startswith(str(REPO))
    index = json.loads((images / "images.json").read_text())
    assert (images / index["node"]["archive"]).stat().st_size > 100 << 20
    assert index["node"]["id"].startswith("sha256:") and index["toolbox"]["id"].startswith("sha256:")
    assert set(index["helpers"]) == {"iperf3", "ksi-proxy", "ksi-wg"}
    assert all((images / h["file"]).stat().st_mode & 0o111 for h in index["helpers"].values())
    # the hosts' iperf3 (for `ksi-multi bench`) runs with its own libraries, wherever the images are
    version = subprocess.run([images / "iperf3", "--version"], capture_output=True, text=True, check=True).stdout
    assert version.startswith("iperf 3.")
    assert installed.ksi("--version", env={"KSI_IMAGE_DIR": str(images)}).stdout.splitlines()[2:] == [
        f"  kubernetes  {index['kubernetes']}",
        f"  node        {index['node']['tag']}  {index['node']['id']}",
        f"  toolbox     {index['toolbox']['tag']}  {index['toolbox']['id']}",
        *[f"  {name:<10}  {w['tag']}  {w['id']}  {w['archive']}" for name, w in sorted(index["workloads"].items())],
        f"  liqo        {index['liqo']['version']}  {index['liqo']['archive']}  {index['liqo']['liqoctl']}",
        f"  iperf3      {index['helpers']['iperf3']['file']}  sha256:{index['helpers']['iperf3']['sha256']}",
        f"  ksi-proxy   {index['helpers']['ksi-proxy']['file']}  sha256:{index['helpers']['ksi-proxy']['sha256']}",
        f"  ksi-wg      {index['helpers']['ksi-wg']['file']}  sha256:{index['helpers']['ksi-wg']['sha256']}",
    ]
    assert len(installed.ksi("batch-script").stdout) == len(Path(REPO / "sbatch/ksi-multi.sbatch").read_text())


@pytest.mark.root
def test_image_build_names_a_missing_tool_before_building(installed, tmp_path):
    """Without Go on PATH: one clear line naming it and the fix, nothing built."""
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("mmdebstrap", "gcc", "newuidmap"):
        (bare / tool).symlink_to(f"/usr/bin/{tool}")
    out = tmp_path / "images"
    proc = installed.ksi("image", "build", "--output", str(out), check=False,
                         env={"PATH": f"{installed.venv / 'bin'}:{bare}"})
    assert proc.returncode != 0
    assert "Go is not installed" in proc.stderr and "install Go >= 1.24" in proc.stderr
    assert not out.exists()
