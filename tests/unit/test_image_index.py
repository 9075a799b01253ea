import json

from ksi_multi.image import index


def test_describe_names_kubernetes_image_ids_and_helpers(tmp_path):
    assert index.describe(tmp_path) == [f"images: none built in {tmp_path} (ksi-multi image build)"]
    (tmp_path / "images.json").write_text(json.dumps({
        "ksi_multi": "0.1.0", "kubernetes": "v1.32.5",
        "node": {"tag": "localhost/ksi-multi/node:v1.32.5", "archive": "node.tar", "id": "sha256:aa"},
        "toolbox": {"tag": "localhost/ksi-multi/toolbox:1", "archive": "toolbox.tar", "id": "sha256:bb"},
        "helpers": {"ksi-wg": {"file": "ksi-wg", "sha256": "cc"}}}))
    assert index.describe(tmp_path) == [
        f"images in {tmp_path} (built by ksi-multi 0.1.0):",
        "  kubernetes  v1.32.5",
        "  node        localhost/ksi-multi/node:v1.32.5  sha256:aa",
        "  toolbox     localhost/ksi-multi/toolbox:1  sha256:bb",
        "  ksi-wg      ksi-wg  sha256:cc"]
    assert index.helper_paths(tmp_path) == {"ksi-wg": tmp_path / "ksi-wg"}


def test_describe_survives_a_damaged_index(tmp_path):
    (tmp_path / "images.json").write_text("{not json")
    assert index.describe(tmp_path)[0].startswith(f"images: cannot read {tmp_path}/images.json")
