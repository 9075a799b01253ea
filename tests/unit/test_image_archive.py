import hashlib
import json
import os
import tarfile

from ksi_multi.image import archive


def _tree(root):
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/tool").write_text("#!/bin/sh\necho hi\n")
    os.chmod(root / "usr/bin/tool", 0o755)
    (root / "etc").mkdir()
    (root / "etc/secret").write_text("x")
    os.chmod(root / "etc/secret", 0o600)
    os.symlink("usr/bin", root / "bin")
    os.link(root / "usr/bin/tool", root / "usr/bin/tool2")
    for d in ("proc", "dev", "tmp"):
        (root / d).mkdir()
    (root / "proc/junk").write_text("must not be packed")


def test_archive_layout_digests_and_contents(tmp_path):
    root = tmp_path / "root"
    _tree(root)
    extra = tmp_path / "bin-pause"
    extra.write_bytes(b"\x7fELF fake")
    out = tmp_path / "img.tar"
    image_id = archive.write(out, "registry.k8s.io/pause:3.10",
                             [archive.Layer(root=root), archive.Layer(files={"/pause": (extra, 0o755)},
                                                                      links={"/etc/x/link": "/pause"})],
                             archive.ImageConfig(entrypoint=["/pause"], stop_signal="SIGRTMIN+3"))
    with tarfile.open(out) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        assert manifest[0]["RepoTags"] == ["registry.k8s.io/pause:3.10"]
        conf_bytes = tar.extractfile(manifest[0]["Config"]).read()
        assert hashlib.sha256(conf_bytes).hexdigest() == image_id
        conf = json.loads(conf_bytes)
        assert conf["config"]["Entrypoint"] == ["/pause"]
        assert conf["config"]["StopSignal"] == "SIGRTMIN+3"
        layers = [tar.extractfile(name).read() for name in manifest[0]["Layers"]]
    assert [f"sha256:{hashlib.sha256(data).hexdigest()}" for data in layers] == conf["rootfs"]["diff_ids"]
    import io

    with tarfile.open(fileobj=io.BytesIO(layers[0])) as base:
        members = {m.name: m for m in base.getmembers()}
    assert members["usr/bin/tool"].mode & 0o777 == 0o755
    assert members["etc/secret"].mode & 0o777 == 0o600
    assert members["bin"].issym() and members["bin"].linkname == "usr/bin"
    assert members["usr/bin/tool2"].islnk() or members["usr/bin/tool"].islnk()
    assert "proc" in members and "proc/junk" not in members and "dev" in members
    with tarfile.open(fileobj=io.BytesIO(layers[1])) as top:
        members = {m.name: m for m in top.getmembers()}
    assert members["pause"].mode == 0o755 and members["pause"].uid == 0
    assert members["etc/x/link"].issym() and members["etc/x/link"].linkname == "/pause"
    assert members["etc/x"].isdir()
    assert not list(tmp_path.glob("*.parts")) and not list(tmp_path.glob("*.partial"))


def test_same_input_same_image_id(tmp_path):
    f = tmp_path / "f"
    f.write_text("data")
    os.utime(f, (1, 1))
    ids = {archive.write(tmp_path / f"{i}.tar", "x/y:1", [archive.Layer(files={"/f": (f, 0o644)})],
                         archive.ImageConfig(cmd=["/f"])) for i in range(2)}
    assert len(ids) == 1


def test_several_images_share_one_copy_of_the_layers(tmp_path):
    f = tmp_path / "bin"
    f.write_bytes(b"\x7fELF two tools")
    out = tmp_path / "many.tar"
    ids = archive.write_many(out, [archive.Layer(files={"/usr/bin/a": (f, 0o755), "/usr/bin/b": (f, 0o755)})],
                             [("x/a:v1", archive.ImageConfig(entrypoint=["/usr/bin/a"])),
                              ("x/b:v1", archive.ImageConfig(entrypoint=["/usr/bin/b"]))])
    assert len(set(ids)) == 2
    with tarfile.open(out) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))
        entry = {tuple(m["RepoTags"]): json.load(tar.extractfile(m["Config"])) for m in manifest}
        repos = json.load(tar.extractfile("repositories"))
    assert entry[("x/a:v1",)]["config"]["Entrypoint"] == ["/usr/bin/a"]
    assert entry[("x/b:v1",)]["config"]["Entrypoint"] == ["/usr/bin/b"]
    assert manifest[0]["Layers"] == manifest[1]["Layers"]
    assert sum(n.endswith("layer.tar") for n in names) == 1
    assert set(repos) == {"x/a", "x/b"}
    assert archive.read_manifest(out) == manifest
