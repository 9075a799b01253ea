import json
import os
import subprocess
import time

import pytest
import yaml

from ksi_multi import kubeadm, node
from ksi_multi.cgroups import V1, JobCgroup
from ksi_multi.errors import KsiError
from ksi_multi.image.kubernetes import split_version
from ksi_multi.node import NodeSpec
from ksi_multi.ranges import Ranges

NODE_ADDRESS = Ranges().node_address

ADMIN_CONF = """\
apiVersion: v1
kind: Config
clusters:
- cluster: {certificate-authority-data: Q0E=, server: 'https://10.0.2.100:6443'}
  name: ksi-7
contexts:
- context: {cluster: ksi-7, user: kubernetes-admin}
  name: kubernetes-admin@ksi-7
current-context: kubernetes-admin@ksi-7
users:
- name: kubernetes-admin
  user: {client-certificate-data: Q0VSVA==, client-key-data: S0VZ}
"""


def plan(**kw):
    values = dict(job_id="7", kubernetes_version="v1.32.5", node_name="node01", node_ip=NODE_ADDRESS,
                  host_address="10.77.0.11", api_server_port=6443, token="abcdef.0123456789abcdef")
    values.update(kw)
    return kubeadm.ClusterPlan(**values)


def test_node_spec_forwards_only_what_is_needed_on_the_host_address():
    rank0 = NodeSpec("7", "node01", "img:1", "10.77.0.11", api_port=16443, mesh_port=51820)
    args = rank0.run_args()
    assert args[:2] == ["run", "--detach"]
    assert args[args.index("--name") + 1] == "ksi-7-node01"
    assert ["-p", "10.77.0.11:16443:6443/tcp"] == args[args.index("-p"):args.index("-p") + 2]
    assert "10.77.0.11:51820:51820/udp" in args
    assert args[args.index("--network") + 1].startswith(f"pasta:-a,{NODE_ADDRESS},")
    assert "--cgroupns=private" in args and "--systemd=false" in args
    assert args[-2:] == ["img:1", "/sbin/init"]
    worker = NodeSpec("7", "node02", "img:1", "10.77.0.12", net_backend="slirp4netns", mesh_port=51820)
    assert not any(a.endswith("/tcp") for a in worker.run_args())
    assert worker.network().startswith("slirp4netns:port_handler=slirp4netns")
    assert worker.volume == "ksi-7-node02-containerd"


def test_a_node_without_kubernetes_masks_its_units():
    args = NodeSpec("7", "node01", "img:1", "h", masked=("containerd.service", "kubelet.service")).run_args()
    assert args[-4:] == ["img:1", "/sbin/init", "systemd.mask=containerd.service", "systemd.mask=kubelet.service"]


def test_a_node_from_a_seed_mounts_it_read_only_beside_its_own_containerd(tmp_path):
    args = NodeSpec("7", "node01", "img:1", "h", containerd=tmp_path / "own", seed=tmp_path / "seed").run_args()
    volumes = [args[i + 1] for i, a in enumerate(args) if a == "--volume"]
    assert volumes == [f"{tmp_path / 'own'}:/var/lib/containerd", f"{tmp_path / 'seed'}:{node.SEED_IN_NODE}:ro"]
    seeding = node.seed_args("ksi-seed-7-node01", "img:1", tmp_path / "into")
    assert seeding[seeding.index("--network") + 1] == "none" and "-p" not in seeding
    assert f"{tmp_path / 'into'}:/var/lib/containerd" in seeding
    assert seeding[-3:] == ["img:1", "/sbin/init", "systemd.mask=kubelet.service"]


def test_a_nodes_containerd_copies_the_seeds_databases_and_links_its_layers(tmp_path):
    seed = tmp_path / "seed"
    layers = seed / node.OVERLAY_SNAPSHOTS
    for n in ("1", "2"):
        (layers / n / "fs" / "usr").mkdir(parents=True)
    (seed / node.OVERLAY_SNAPSHOTS.parent / "metadata.db").write_bytes(b"snapshots")
    (seed / "io.containerd.metadata.v1.bolt").mkdir()
    (seed / "io.containerd.metadata.v1.bolt" / "meta.db").write_bytes(b"images")
    (seed / ".ksi-images-imported").write_text("")
    own = tmp_path / "job" / "node-containerd"
    node.containerd_from_seed(seed, own)
    assert (own / "io.containerd.metadata.v1.bolt" / "meta.db").read_bytes() == b"images"
    assert (own / node.OVERLAY_SNAPSHOTS.parent / "metadata.db").read_bytes() == b"snapshots"
    assert (own / ".ksi-images-imported").is_file()
    linked = own / node.OVERLAY_SNAPSHOTS
    assert sorted(p.name for p in linked.iterdir()) == ["1", "2"]
    assert all(p.is_symlink() and os.readlink(p) == f"{node.SEED_IN_NODE}/{node.OVERLAY_SNAPSHOTS}/{p.name}"
               for p in linked.iterdir())
    (linked / "3").mkdir()  # the job's own layers are its own: the seed is untouched
    assert sorted(p.name for p in layers.iterdir()) == ["1", "2"]


def test_boot_checks_wait_inside_the_node_until_true_or_their_window_ends(tmp_path):
    flag = tmp_path / "ready"
    script = node._waiting_inside(f"test -e {flag}", 2)
    started = time.monotonic()
    assert subprocess.run(["sh", "-c", script]).returncode == 1  # never true: gives up after its window
    assert 1 <= time.monotonic() - started < 5
    later = subprocess.Popen(["sh", "-c", f"sleep 0.5; touch {flag}"])
    started = time.monotonic()
    assert subprocess.run(["sh", "-c", script]).returncode == 0
    assert time.monotonic() - started < 1.5  # seen within a poll of it becoming true
    later.wait()


def test_two_jobs_on_one_host_do_not_share_names():
    a, b = NodeSpec("7", "node01", "i", "h"), NodeSpec("8", "node01", "i", "h")
    assert {a.name, a.volume} & {b.name, b.volume} == set()


def test_init_config_has_the_rootless_settings():
    docs = list(yaml.safe_load_all(kubeadm.init_config(plan())))
    kinds = {d["kind"]: d for d in docs}
    init, cluster = kinds["InitConfiguration"], kinds["ClusterConfiguration"]
    assert init["bootstrapTokens"][0]["token"] == "abcdef.0123456789abcdef"
    assert init["localAPIEndpoint"]["advertiseAddress"] == NODE_ADDRESS
    assert {"name": "node-ip", "value": NODE_ADDRESS} in init["nodeRegistration"]["kubeletExtraArgs"]
    assert cluster["kubernetesVersion"] == "v1.32.5"
    assert {"10.77.0.11", NODE_ADDRESS, "node01", "localhost"} <= set(cluster["apiServer"]["certSANs"])
    assert kinds["KubeletConfiguration"]["featureGates"] == {"KubeletInUserNamespace": True}
    assert kinds["KubeletConfiguration"]["cgroupRoot"] == "/kubelet"
    assert kinds["KubeletConfiguration"]["localStorageCapacityIsolation"] is False
    conntrack = kinds["KubeProxyConfiguration"]["conntrack"]
    assert conntrack["maxPerCore"] == 0 and conntrack["tcpEstablishedTimeout"] == "0s"


def test_init_config_schedules_work_on_the_control_plane_and_patches_coredns():
    init = next(yaml.safe_load_all(kubeadm.init_config(plan())))
    assert init["nodeRegistration"]["taints"] == []  # empty, not absent: absent means the control-plane taint
    assert init["patches"]["directory"] == kubeadm.PATCHES_DIR
    cluster = list(yaml.safe_load_all(kubeadm.init_config(plan())))[1]
    assert cluster["encryptionAlgorithm"] == "ECDSA-P256"  # no RSA keys to make at every start
    (name, text), = kubeadm.PATCHES.items()
    assert name == "corednsdeployment+strategic.yaml"
    container = yaml.safe_load(text)["spec"]["template"]["spec"]["containers"][0]
    assert container == {"name": "coredns", "readinessProbe": {"periodSeconds": 1}}


def test_user_kubeconfig_points_at_the_forwarded_port_and_keeps_tls():
    conf = yaml.safe_load(kubeadm.user_kubeconfig(ADMIN_CONF, plan(api_server_port=16443)))
    cluster = conf["clusters"][0]["cluster"]
    assert cluster["server"] == "https://10.77.0.11:16443"
    assert cluster["certificate-authority-data"] == "Q0E="
    assert "insecure-skip-tls-verify" not in cluster
    assert conf["current-context"] == "ksi-7"
    assert conf["contexts"][0]["context"]["cluster"] == "ksi-7"


def test_cni_config_and_pod_ranges():
    conf = json.loads(kubeadm.cni_config(kubeadm.pod_cidr(3)))
    bridge = conf["plugins"][0]
    assert bridge["type"] == "bridge"
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.244.3.0/24"}]]
    assert bridge["ipMasq"] is False  # masquerade_rule does it, sparing pod-to-pod traffic
    assert "mtu" not in bridge and json.loads(kubeadm.cni_config("10.244.3.0/24", 1420))["plugins"][0]["mtu"] == 1420
    rule = kubeadm.masquerade_rule("10.244.3.0/24")
    assert rule[:3] == ["POSTROUTING", "-t", "nat"] and rule[-2:] == ["-j", "MASQUERADE"]
    assert rule[rule.index("-s") + 1] == "10.244.3.0/24" and rule[rule.index("-d") - 1:rule.index("-d") + 2] == [
        "!", "-d", "10.244.0.0/16"]
    assert kubeadm.pod_cidr(0) == "10.244.0.0/24"
    with pytest.raises(ValueError):
        kubeadm.pod_cidr(256)


def test_bootstrap_tokens_are_well_formed_and_fresh():
    tokens = {kubeadm.bootstrap_token() for _ in range(20)}
    assert len(tokens) == 20
    for t in tokens:
        left, right = t.split(".")
        assert len(left) == 6 and len(right) == 16 and t == t.lower()


def test_kubernetes_version_forms():
    assert split_version("1.32") == ("1.32", "auto")
    assert split_version("v1.32.5") == ("1.32", "v1.32.5")
    assert split_version("1.31.2") == ("1.31", "v1.31.2")
    for bad in ("latest", "2.0", "1", "v1.x.3"):
        with pytest.raises(KsiError, match="bad Kubernetes version"):
            split_version(bad)


def test_job_cgroup_created_and_removed_bottom_up(tmp_path):
    for c in V1:
        (tmp_path / c / "ksi-multi/alice").mkdir(parents=True)
    (tmp_path / "cpuset/cpuset.cpus").write_text("0-1\n")
    (tmp_path / "cpuset/ksi-multi/alice/cpuset.cpus").write_text("0-1\n")
    (tmp_path / "cpuset/ksi-multi/alice/cpuset.mems").write_text("0\n")
    cg = JobCgroup("ksi-multi/alice", "job-7", root=tmp_path)
    cg.create()
    assert all(p.is_dir() for p in cg.paths()) and len(cg.paths()) == len(V1)
    (tmp_path / "memory/ksi-multi/alice/job-7/kubelet/pods").mkdir(parents=True)  # what systemd/kubelet add
    cg.remove()
    assert not any(p.exists() for p in cg.paths())
    assert (tmp_path / "memory/ksi-multi/alice").is_dir()


def test_a_node_script_writes_files_exactly_and_keeps_stdout_for_the_answer(tmp_path):
    files = {str(tmp_path / "etc" / "a b.conf"): "line 1\n  'quoted' $HOME `x`\n",
             str(tmp_path / "tricky"): "KSI_END_OF_FILE\nrest\n"}
    script = kubeadm.node_script(files, [["echo", "progress"], ["printf", "%s", "answer"]], quiet=1)
    done = subprocess.run(["sh", "-es"], input=script, capture_output=True, text=True, check=True)
    assert done.stdout == "answer" and done.stderr == "progress\n"
    assert {path: open(path).read() for path in files} == files
    failing = kubeadm.node_script({}, [["false"], ["echo", "not reached"]])
    assert subprocess.run(["sh", "-es"], input=failing, capture_output=True, text=True).stdout == ""


def test_the_join_pin_is_kubeadms_hash_of_the_ca_public_key(tmp_path):
    import base64
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "kubernetes")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "ca.crt").write_bytes(pem)
    # the recipe of kubeadm's documentation for computing --discovery-token-ca-cert-hash
    expected = subprocess.run(
        "openssl x509 -pubkey -in ca.crt | openssl pkey -pubin -outform der | sha256sum", shell=True,
        cwd=tmp_path, capture_output=True, text=True, check=True).stdout.split()[0]
    admin = yaml.safe_dump({"clusters": [{"name": "k", "cluster": {
        "server": "https://10.250.0.1:6443", "certificate-authority-data": base64.b64encode(pem).decode()}}]})
    join = kubeadm.join_material(plan(), admin)
    assert join == {"endpoint": f"{NODE_ADDRESS}:6443", "token": "abcdef.0123456789abcdef",
                    "ca_cert_hash": f"sha256:{expected}"}
