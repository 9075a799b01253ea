"""kubeadm configuration, CNI configuration and the user's kubeconfig: pure functions of the cluster plan."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import posixpath
import secrets
import shlex
import string
from dataclasses import dataclass

import yaml

from ksi_multi.node import API_PORT_IN_NODE
from ksi_multi.ranges import Ranges
from ksi_multi.templates import render

POD_SUBNET = Ranges().pods
FEATURE_GATES = "KubeletInUserNamespace=true"


def bootstrap_token() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(6)) + "." + "".join(
        secrets.choice(alphabet) for _ in range(16))


def pod_cidr(rank: int, pod_subnet: str = POD_SUBNET) -> str:
    """Each node's pod range: the rank-th /24 of the cluster's pod subnet."""
    subnets = ipaddress.ip_network(pod_subnet).subnets(new_prefix=24)
    for i, net in enumerate(subnets):
        if i == rank:
            return str(net)
    raise ValueError(f"rank {rank} does not fit into {pod_subnet}")


@dataclass(frozen=True)
class ClusterPlan:
    job_id: str
    kubernetes_version: str
    node_name: str
    node_ip: str
    host_address: str
    api_server_port: int
    token: str
    ranges: Ranges = Ranges()

    @property
    def sans(self) -> list[str]:
        return sorted({"localhost", "127.0.0.1", self.node_ip, self.host_address, self.node_name})

    @property
    def server_url(self) -> str:
        """How the user reaches the API server: this host's address and its forwarded port."""
        return f"https://{self.host_address}:{self.api_server_port}"


PATCHES_DIR = "/ksi/kubeadm-patches"
# kubeadm's patch files (target+patchtype.yaml): CoreDNS probed for readiness every second, not every 10 s, so
# that the cluster is found ready as soon as DNS answers
PATCHES = {"corednsdeployment+strategic.yaml": """\
spec:
  template:
    spec:
      containers:
      - name: coredns
        readinessProbe:
          periodSeconds: 1
"""}


def init_config(plan: ClusterPlan) -> str:
    return render(
        "kubeadm.yaml.j2", job_id=plan.job_id, token=plan.token, node_ip=plan.node_ip, node_name=plan.node_name,
        patches_dir=PATCHES_DIR,
        kubernetes_version=plan.kubernetes_version, api_port_in_node=API_PORT_IN_NODE, sans=plan.sans,
        feature_gates=FEATURE_GATES, pod_subnet=plan.ranges.pods, service_subnet=plan.ranges.services)


def join_config(job_id: str, node_name: str, node_ip: str, join: dict) -> str:
    return render("kubeadm-join.yaml.j2", job_id=job_id, node_name=node_name, node_ip=node_ip,
                  endpoint=join["endpoint"], token=join["token"], ca_cert_hash=join["ca_cert_hash"])


def ca_cert_hash(kubeconfig: str) -> str:
    """kubeadm's --discovery-token-ca-cert-hash of the cluster CA in a kubeconfig: the SHA-256 of the CA
    certificate's public key (SubjectPublicKeyInfo), which a joining node pins."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    data = yaml.safe_load(kubeconfig)["clusters"][0]["cluster"]["certificate-authority-data"]
    key = x509.load_pem_x509_certificate(base64.b64decode(data)).public_key()
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def join_material(plan: ClusterPlan, admin_conf: str) -> dict:
    """What another node needs to join: the API server on the mesh, the bootstrap token, the CA's pin."""
    return {"endpoint": f"{plan.node_ip}:{API_PORT_IN_NODE}", "token": plan.token,
            "ca_cert_hash": ca_cert_hash(admin_conf)}


def node_script(files: dict[str, str], commands: list[list[str]], quiet: int = 0) -> str:
    """A shell script (for `sh -es` on stdin, one `podman exec` in all) that writes `files` (path -> text)
    and runs `commands`; the first `quiet` of them with their output on stderr (stdout is the answer)."""
    lines = []
    for path, text in files.items():
        delimiter = "KSI_END_OF_FILE"
        while delimiter in text:
            delimiter += "_"
        end = "" if text.endswith("\n") else "\n"
        lines += [f"mkdir -p {shlex.quote(posixpath.dirname(path))}",
                  f"cat > {shlex.quote(path)} <<'{delimiter}'\n{text}{end}{delimiter}"]
    for i, command in enumerate(commands):
        lines.append(shlex.join(command) + " </dev/null" + (" >&2" if i < quiet else ""))
    return "\n".join(lines) + "\n"


def cni_config(pod_cidr_of_node: str, mtu: int | None = None) -> str:
    """Debian's reference plugins: a bridge with host-local addresses from the node's pod range.
    No ipMasq: the bridge plugin would masquerade everything outside this node's range, other nodes' pods
    included; `masquerade_rule` keeps pod addresses across the cluster. `mtu`: the mesh's, so pods never
    send packets the mesh would have to refuse."""
    bridge = {"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": False, "hairpinMode": True,
              "ipam": {"type": "host-local", "ranges": [[{"subnet": pod_cidr_of_node}]],
                       "routes": [{"dst": "0.0.0.0/0"}]}}
    if mtu:
        bridge["mtu"] = mtu
    return json.dumps({
        "cniVersion": "1.0.0", "name": "ksi",
        "plugins": [
            bridge,
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ]}, indent=2) + "\n"


def masquerade_rule(pod_cidr_of_node: str, pod_subnet: str = POD_SUBNET) -> list[str]:
    """iptables arguments (for -A/-C/-D) that masquerade this node's pods only when they leave the pod network:
    pod to pod keeps its source address on every node, pod to outside leaves with the node's address."""
    return ["POSTROUTING", "-t", "nat", "-s", pod_cidr_of_node, "!", "-d", pod_subnet,
            "-m", "comment", "--comment", "ksi-multi: pods leaving the pod network", "-j", "MASQUERADE"]


STORAGE_CLASS = """\
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: kubernetes.io/host-path
reclaimPolicy: Delete
volumeBindingMode: Immediate
"""


def user_kubeconfig(admin_conf: str, plan: ClusterPlan, name: str = "") -> str:
    """admin.conf with the server set to the address users reach; TLS stays verified against the cluster CA.
    `name`: of its cluster and context (default ksi-JOBID)."""
    name = name or f"ksi-{plan.job_id}"
    conf = yaml.safe_load(admin_conf)
    for cluster in conf["clusters"]:
        cluster["cluster"]["server"] = plan.server_url
        cluster["cluster"].pop("insecure-skip-tls-verify", None)
        cluster["name"] = name
    for ctx in conf["contexts"]:
        ctx["context"]["cluster"] = name
        ctx["name"] = name
    conf["current-context"] = name
    return yaml.safe_dump(conf, sort_keys=False)
