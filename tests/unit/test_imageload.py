import gzip
import io
import json
import tarfile

import pytest

from ksi_multi import config, imageload
from ksi_multi.errors import ConfigError, KsiError
from ksi_multi.image import archive, workloads


def _docker(tmp_path, tag="localhost/app:1.0"):
    f = tmp_path / "x"
    f.write_text("x")
    out = tmp_path / "docker.tar"
    archive.write(out, tag, [archive.Layer(files={"/x": (f, 0o644)})], archive.ImageConfig())
    return out


def _tar(path, members: dict[str, bytes], compress=False):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(buf.getvalue()) if compress else buf.getvalue())
    return path


def test_a_docker_archive_and_its_names(tmp_path):
    info = imageload.inspect(_docker(tmp_path))
    assert (info.kind, info.names) == ("docker-archive", ("localhost/app:1.0",))
    assert imageload.name_warnings(info) == []


def test_an_oci_archive_named_by_either_annotation(tmp_path):
    index = {"schemaVersion": 2, "manifests": [
        {"digest": "sha256:1", "annotations": {"org.opencontainers.image.ref.name": "localhost/a:2"}},
        {"digest": "sha256:2", "annotations": {"io.containerd.image.name": "docker.io/library/b:3"}}]}
    path = _tar(tmp_path / "oci.tar.gz", {"oci-layout": b"{}", "index.json": json.dumps(index).encode()}, compress=True)
    info = imageload.inspect(path)
    assert (info.kind, info.names) == ("oci-archive", ("localhost/a:2", "docker.io/library/b:3"))


@pytest.mark.parametrize("content", [b"not an image\n", b""])
def test_a_file_that_is_not_a_tar_is_refused_with_one_line(tmp_path, content):
    bad = tmp_path / "bad.tar"
    bad.write_bytes(content)
    with pytest.raises(KsiError) as exc:
        imageload.inspect(bad)
    assert "bad.tar is not an image archive" in exc.value.cause and "\n" not in exc.value.cause
    assert "podman save" in exc.value.fix


def test_a_tar_without_an_image_manifest_is_refused(tmp_path):
    plain = _tar(tmp_path / "plain.tar", {"hello.txt": b"hi", "manifest.json": b'{"not": "a list"}'})
    with pytest.raises(KsiError, match="no manifest.json or index.json"):
        imageload.inspect(plain)


def test_a_huge_manifest_is_not_read(tmp_path):
    big = _tar(tmp_path / "big.tar", {"manifest.json": b"[" + b" " * (imageload.MAX_INDEX_BYTES + 1) + b"]"})
    with pytest.raises(KsiError, match="is not an image archive"):
        imageload.inspect(big)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(KsiError, match="no such file"):
        imageload.inspect(tmp_path / "nope.tar")


@pytest.mark.parametrize("name,warned", [("localhost/a:1", False), ("localhost/a", True), ("a:latest", True),
                                         ("registry:5000/a", True), ("registry:5000/a:2", False),
                                         ("a@sha256:abc", False)])
def test_names_kubernetes_would_pull_are_warned_about(name, warned):
    warnings = imageload.name_warnings(imageload.ArchiveInfo(path=None, kind="docker-archive", names=(name,)))
    assert bool(warnings) == warned
    if warned:
        assert "imagePullPolicy: IfNotPresent" in warnings[0]


def test_an_unnamed_image_is_warned_about(tmp_path):
    warnings = imageload.name_warnings(imageload.ArchiveInfo(tmp_path / "x.tar", "docker-archive", ()))
    assert "has no name" in warnings[0]


def test_images_expand_directories_to_their_archives(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    for name in ("b.tar", "a.tar.gz", "notes.txt"):
        (d / name).write_text("x")
    (d / "sub.tar").mkdir()
    single = tmp_path / "c.tar"
    assert imageload.expand([d, single]) == [d / "a.tar.gz", d / "b.tar", single]


def test_results_are_parsed_per_host_and_noise_is_ignored():
    out = "\n".join(["srun: something", imageload.RESULT_MARK + imageload.NodeResult("n1", ("a:1",), 2.5).to_json(),
                     imageload.RESULT_MARK + imageload.NodeResult("n2", error="boom").to_json(),
                     imageload.RESULT_MARK + "{not json", imageload.RESULT_MARK + '{"no": "host"}'])
    got = imageload.parse_results(out)
    assert got == {"n1": imageload.NodeResult("n1", ("a:1",), 2.5), "n2": imageload.NodeResult("n2", error="boom")}


def test_the_images_key_takes_a_list_or_commas_and_wants_absolute_paths():
    assert config.load(env={"KSI_IMAGES": "/a.tar,/d"}).images == (config.Path("/a.tar"), config.Path("/d"))
    with pytest.raises(ConfigError, match="must be absolute paths"):
        config.load(env={"KSI_IMAGES": "a.tar"})
    with pytest.raises(ConfigError, match="is not a list of paths"):
        config.load(flags={"images": 5})


def test_workload_names():
    assert workloads.names("all") == tuple(workloads.WORKLOADS)
    assert workloads.names("dask, spark") == ("dask", "spark")
    with pytest.raises(KsiError, match="unknown workload image"):
        workloads.names("dask,hadoop")


def test_python_versions_read_debian_and_pip_metadata(tmp_path):
    debian = tmp_path / "usr/lib/python3/dist-packages"
    (debian / "dask-2024.12.1+dfsg.dist-info").mkdir(parents=True)
    (debian / "dask-2024.12.1+dfsg.dist-info/METADATA").write_text("Name: dask\nVersion: 2024.12.1+dfsg\n")
    (debian / "pandas-2.2.3+dfsg.egg-info").write_text("Metadata-Version: 2.1\nName: pandas\nVersion: 2.2.3+dfsg\n")
    pip = tmp_path / "usr/local/lib/python3.13/dist-packages/pyspark-4.3.0.dist-info"
    pip.mkdir(parents=True)
    (pip / "METADATA").write_text("Name: pyspark\nVersion: 4.3.0\n")
    (tmp_path / "usr/bin").mkdir()
    for name in ("python3.13", "python3.13-config", "python3"):
        (tmp_path / "usr/bin" / name).write_text("")
    assert workloads.python_versions(tmp_path) == {"dask": "2024.12.1", "pandas": "2.2.3", "pyspark": "4.3.0",
                                                   "python": "3.13"}


def test_spark_defaults_point_at_the_jobs_api_server_and_image(tmp_path):
    from ksi_multi import sparkconf

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("clusters:\n- cluster: {server: 'https://10.0.0.1:6443'}\n  name: ksi\n")
    text = sparkconf.render(sparkconf.server_of(kubeconfig), "localhost/ksi-multi/spark:4.3.0", tmp_path / "ex.yaml")
    props = dict(line.split(None, 1) for line in text.splitlines())
    assert props["spark.master"] == "k8s://https://10.0.0.1:6443"
    assert props["spark.kubernetes.container.image"] == "localhost/ksi-multi/spark:4.3.0"
    assert props["spark.kubernetes.container.image.pullPolicy"] == "IfNotPresent"
    assert props["spark.kubernetes.executor.podTemplateFile"] == str(tmp_path / "ex.yaml")
    kubeconfig.write_text("not: a kubeconfig\n")
    with pytest.raises(KsiError, match="cannot read the API server"):
        sparkconf.server_of(kubeconfig)


def test_manifests_parse_and_use_the_images_the_build_tags():
    import yaml

    from ksi_multi import resources

    dask = list(yaml.safe_load_all((resources.path("manifests") / "dask/dask.yaml").read_text()))
    images = {c["image"] for d in dask if d["kind"] == "Deployment" for c in d["spec"]["template"]["spec"]["containers"]}
    assert images == {workloads.DASK.tag("2024.12.1")}
    client = yaml.safe_load((resources.path("manifests") / "spark/examples/client-pod.yaml").read_text())
    assert client["spec"]["containers"][0]["image"] == workloads.SPARK.tag(workloads.PYSPARK)
    env = {e["name"]: e.get("value") for e in client["spec"]["containers"][0]["env"]}
    assert env["SPARK_IMAGE"] == workloads.SPARK.tag(workloads.PYSPARK)
    template = yaml.safe_load((resources.path("manifests") / "spark/templates/executor.yaml").read_text())
    assert template["spec"]["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"
    operator = list(yaml.safe_load_all((resources.path("manifests") / "dask-operator/operator.yaml").read_text()))
    pod = next(d for d in operator if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert {c["image"] for c in pod["initContainers"] + pod["containers"]} == {workloads.DASK.tag("2024.12.1")}
    installer = pod["initContainers"][0]["command"][-1]
    assert installer in dict(workloads.DASK.files), "the init container runs a file the image has"
    example = (resources.path("manifests") / "dask-operator/kubecluster.py").read_text()
    assert f'IMAGE = "{workloads.DASK.tag("2024.12.1")}"' in example


def test_an_archive_this_host_cannot_read_is_named_before_podman_runs(tmp_path):
    from ksi_multi.podman import PodmanHome

    with pytest.raises(KsiError) as exc:
        imageload.import_archives(PodmanHome(tmp_path / "store"), "ksi-1-node01", [tmp_path / "elsewhere.tar"])
    assert "elsewhere.tar: cannot read it on this host" in exc.value.cause and "not /tmp" in exc.value.fix


def test_a_fix_to_an_installed_file_changes_exactly_one_place_or_stops_the_build(tmp_path):
    from ksi_multi.image.workloads import SourceFix, apply_fixes

    root = tmp_path / "root"
    target = root / "usr/lib/python3.13/site/mod.py"
    target.parent.mkdir(parents=True)
    target.write_text("a = 1\nphase = 'Pending'\nb = 2\n")
    fix = SourceFix(path="usr/lib/python3*/site/mod.py", old="phase = 'Pending'\n", new="phase = 'Running'\n",
                    why="an example")
    files = apply_fixes(root, (fix,), tmp_path / "work")
    (copy, mode), = files.values()
    assert list(files) == ["/usr/lib/python3.13/site/mod.py"] and mode == 0o644
    assert copy.read_text() == "a = 1\nphase = 'Running'\nb = 2\n"
    assert target.read_text() == "a = 1\nphase = 'Pending'\nb = 2\n"  # the cached userland stays as built
    target.write_text("phase = 'Pending'\nphase = 'Pending'\n")
    with pytest.raises(KsiError, match="2 time"):
        apply_fixes(root, (fix,), tmp_path / "work")
    with pytest.raises(KsiError, match="0 file"):
        apply_fixes(root, (SourceFix("no/such/file.py", "x", "y", "an example"),), tmp_path / "work")
