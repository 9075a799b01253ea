"""Run in the sandbox as the user: the Python kubernetes client against a job's kubeconfig. Prints JSON."""

import base64
import json
import sys
import tempfile

import yaml
from kubernetes import client, config

kubeconfig = sys.argv[1]
result = {}
api = client.CoreV1Api(config.new_client_from_config(kubeconfig))
nodes = api.list_node().items
result["nodes"] = {n.metadata.name: {"ready": any(c.type == "Ready" and c.status == "True" for c in n.status.conditions),
                                     "internal_ip": next(a.address for a in n.status.addresses if a.type == "InternalIP")}
                   for n in nodes}
cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="ksi-client-check"), data={"k": "v"})
api.create_namespaced_config_map("default", cm)
result["configmap"] = api.read_namespaced_config_map("ksi-client-check", "default").data
api.delete_namespaced_config_map("ksi-client-check", "default")

# TLS is verified: the same kubeconfig with another CA must be refused.
conf = yaml.safe_load(open(kubeconfig))
cluster = conf["clusters"][0]["cluster"]
result["verify_ssl"] = "insecure-skip-tls-verify" not in cluster
with open("/etc/ssl/certs/ca-certificates.crt") as bundle:
    first = bundle.read().split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
cluster["certificate-authority-data"] = base64.b64encode(first.encode()).decode()
with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as fh:
    yaml.safe_dump(conf, fh)
try:
    client.CoreV1Api(config.new_client_from_config(fh.name)).list_node(_request_timeout=10)
    result["wrong_ca"] = "accepted"
except Exception as exc:  # urllib3 wraps the SSL error
    result["wrong_ca"] = "refused" if "CERTIFICATE_VERIFY_FAILED" in str(exc) or "SSL" in str(exc) else repr(exc)[:200]
print(json.dumps(result))
