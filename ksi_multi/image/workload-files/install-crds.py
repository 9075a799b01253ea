#!/usr/bin/env python3
"""Create or update the Dask operator's CustomResourceDefinitions from the dask-kubernetes package installed in
this image, with the pod's ServiceAccount (the operator's init container runs this). The CRDs are too large for
`kubectl apply` (its last-applied annotation), and shipping them with the image keeps them at the operator's
version."""

import sys
from pathlib import Path

import dask_kubernetes
import kubernetes
import yaml
from kubernetes.client.rest import ApiException

CRDS = Path(dask_kubernetes.__file__).parent / "operator/deployment/helm/dask-kubernetes-operator/crds"


def main() -> int:
    kubernetes.config.load_incluster_config()
    api = kubernetes.client.ApiextensionsV1Api()
    files = sorted(CRDS.glob("*.yaml"))
    if not files:
        print(f"no CRDs in {CRDS}", file=sys.stderr)
        return 1
    for path in files:
        body = yaml.safe_load(path.read_text())
        name = body["metadata"]["name"]
        try:
            api.create_custom_resource_definition(body)
            print(f"created {name}")
        except ApiException as exc:
            if exc.status != 409:
                raise
            body["metadata"]["resourceVersion"] = api.read_custom_resource_definition(name).metadata.resource_version
            api.replace_custom_resource_definition(name, body)
            print(f"updated {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
