"""`ksi-multi sandbox demo`: the whole user story on the virtual cluster, with a printed summary."""

from __future__ import annotations

import json
import re
import time

from ksi_multi import resources, status
from ksi_multi.errors import KsiError
from ksi_multi.image import build
from ksi_multi.sandbox.cluster import SHARED, Sandbox
from ksi_multi.sandbox.plan import SandboxPlan

IMAGES = SHARED / "images"
CHECK = ("kubectl run demo-dns --image=localhost/ksi-multi/toolbox:1 --restart=Never --command -- "
         "sh -c 'getent hosts kubernetes.default.svc.cluster.local' >/dev/null && "
         "kubectl wait --for=jsonpath={.status.phase}=Succeeded pod/demo-dns --timeout=120s >/dev/null && "
         "kubectl logs demo-dns && kubectl delete pod demo-dns --wait=false >/dev/null")


def run_demo(box: Sandbox, nodes: int, cache, echo=print, wheel=None) -> dict:
    started = time.monotonic()
    if not box.alive():
        box.up(SandboxPlan(name=box.name, nodes=nodes), echo=echo, wheel=wheel)
    build.build(IMAGES, cache, echo=echo, workload_names=("dask",))

    def user(cmd: str, what: str, script: str | None = None) -> str:
        proc = box.exec("login", cmd, capture=True, timeout=900, input=script)
        if proc.returncode != 0:
            raise KsiError(f"demo: {what} failed: {(proc.stderr or proc.stdout).strip()}")
        return proc.stdout

    submit = f"ksi-multi submit -N {nodes} --image-dir {IMAGES} --images {IMAGES}/dask.tar"
    echo(f"submitting as the sandbox user: {submit}")
    out = user(submit, "submit")
    echo(out.rstrip())
    job = re.search(r"submitted job (\d+)", out).group(1)
    user(f"ksi-multi wait-ready --job {job}", "waiting for the cluster")
    kube = f"export KUBECONFIG=$(ksi-multi kubeconfig --job {job}); "
    echo("\n" + user(kube + "kubectl get nodes -o wide", "kubectl get nodes").rstrip())
    echo("cluster DNS from a pod: " + user(kube + CHECK, "the DNS check").strip())
    if nodes > 1:
        checks = user(f"bash -s -- $(ksi-multi kubeconfig --job {job})", "the cross-node check",
                      script=resources.path("sandbox/xnode.sh").read_text()).split()
        ok = [checks[i + 1] for i, w in enumerate(checks) if w == "ok"]
        want = nodes * nodes  # every pod to every other pod, plus each to a Service
        echo(f"cross-node: {len(ok)} of {want} pod->pod and pod->Service fetches over the mesh succeeded")
        if len(ok) != want:
            raise KsiError(f"demo: only {len(ok)} of {want} cross-node fetches succeeded", "see the agent logs")
    data = json.loads(user(f"ksi-multi status --job {job} --json", "status"))
    echo("\nDask across the nodes: ksi-multi manifest dask | kubectl apply -f -; a client on the login host")
    user(kube + f"ksi-multi manifest dask | kubectl apply -f - >/dev/null && kubectl scale deploy/dask-worker "
         f"--replicas={nodes} >/dev/null && kubectl rollout status deploy/dask-scheduler deploy/dask-worker "
         "--timeout=300s >/dev/null", "starting Dask")
    scheduler = f"tcp://{data['nodes'][0]['host']}:30786"
    echo(user(f"python3 $(ksi-multi manifest dask --path | grep groupby.py) {scheduler} --workers {nodes}",
              "the Dask computation").rstrip())
    echo("")
    for line in status.render(data):
        echo(line)
    echo(f"\ndemo took {time.monotonic() - started:.1f} s. The cluster stays up; try:")
    echo(f"  sudo ksi-multi sandbox shell --name {box.name} -- '{kube}kubectl get pods -A'")
    echo(f"  sudo ksi-multi sandbox shell --name {box.name} -- ksi-multi down --job {job}    # end the job")
    echo(f"  sudo ksi-multi sandbox down --name {box.name}                                   # remove everything")
    return data
