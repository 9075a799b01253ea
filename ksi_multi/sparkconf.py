"""spark-submit's defaults for a job's cluster: its API server as master, the Spark image, the driver's
ServiceAccount (`ksi-multi manifest spark`) and the executor pod template that spreads executors.

    ksi-multi spark-defaults --job ID > spark.conf     # spark-submit wants a regular file, not a pipe
    spark-submit --properties-file spark.conf --deploy-mode cluster local:///opt/ksi-multi/examples/wordcount.py
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ksi_multi.errors import KsiError


def server_of(kubeconfig: Path) -> str:
    """The API server URL of a job's kubeconfig."""
    try:
        data = yaml.safe_load(kubeconfig.read_text())
        return str(data["clusters"][0]["cluster"]["server"])
    except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError) as exc:
        raise KsiError(f"cannot read the API server from {kubeconfig}: {exc}",
                       "is the job ready? ksi-multi status --job ID") from None


def render(server: str, image: str, executor_template: Path, namespace: str = "default") -> str:
    props = {
        "spark.master": f"k8s://{server}",
        "spark.kubernetes.namespace": namespace,
        "spark.kubernetes.container.image": image,
        # the image is on every node (ksi-multi load or the images key); there is no registry to pull from
        "spark.kubernetes.container.image.pullPolicy": "IfNotPresent",
        "spark.kubernetes.authenticate.driver.serviceAccountName": "spark",
        "spark.kubernetes.executor.podTemplateFile": str(executor_template),
    }
    width = max(map(len, props))
    return "".join(f"{key:<{width}}  {value}\n" for key, value in props.items())
