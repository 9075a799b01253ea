"""The NodePort set every host forwards, and how status shows it (pure)."""

from kubernetes import client

from ksi_multi import status
from ksi_multi.nodeports import node_ports


def svc(name, kind, *ports, ns="default"):
    return client.V1Service(metadata=client.V1ObjectMeta(name=name, namespace=ns), spec=client.V1ServiceSpec(
        type=kind, ports=[client.V1ServicePort(port=80, node_port=p, protocol=proto) for p, proto in ports]))


def test_tcp_node_ports_of_nodeport_and_loadbalancer_services_only():
    services = [svc("web", "NodePort", (30080, "TCP"), (30081, None)), svc("dns", "NodePort", (30053, "UDP")),
                svc("lb", "LoadBalancer", (31000, "TCP"), ns="apps"), svc("inner", "ClusterIP", (None, "TCP")),
                svc("pending", "NodePort", (None, "TCP"))]
    assert node_ports(services) == {30080: "default/web", 30081: "default/web", 31000: "apps/lb"}
    assert node_ports([]) == {}


def test_status_names_each_nodeport_its_service_and_the_hosts_without_it():
    data = {"job_id": "7", "state": "ready", "phase": "wait", "timings": {}, "nodes": [
        {"rank": 0, "name": "node01", "host": "10.0.0.1", "ready": True, "nodeports": {"30080": "ok"}},
        {"rank": 1, "name": "node02", "host": "10.0.0.2", "ready": True,
         "nodeports": {"30080": "listen tcp4 10.0.0.2:30080: bind: address already in use"},
         "proxy": "restarted 1x, last at 10:00:00: killed by signal 9"}],
        "nodeports": {"30080": "default/web"}}
    lines = status.render(data)
    assert ("nodeport 30080 (default/web): on 10.0.0.1; NOT on node02: listen tcp4 10.0.0.2:30080: bind: address "
            "already in use") in lines
    assert "      node proxy on node02: restarted 1x, last at 10:00:00: killed by signal 9" in lines
