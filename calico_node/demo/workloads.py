"""The demo cluster's pods: CNI ADD and DEL run by each node's `calico` plugin inside the
node's namespaces, the WorkloadEndpoints they leave, and pod-to-pod reachability."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
from collections.abc import Sequence

from calico_node.demo import kube as kubemod
from calico_node.demo import lab as labmod
from calico_node.demo import plan
from calico_node.demo.members import BIN, ClusterError, Node, Options, Pod
from libcalico import proc
from libcalico.client import Client
from libcalico.datastore.api import Backend
from libcalico.model.resources import WorkloadEndpoint


class Workloads:
    """Part of `Cluster`: pods and their reachability."""

    opts: Options
    lab: labmod.Lab
    backend: Backend
    nodes: dict[str, Node]
    pods: list[Pod]
    kube: kubemod.Kube | None

    def cni(self, node: Node, command: str, container_id: str, netns: str,
            args: str = "") -> proc.Completed:
        if node.proc is None:
            raise ClusterError(f"{node.name} is not running")
        mtu = 1450 if self.opts.encap == "vxlan" else 1500
        conf: dict[str, object]
        if self.kube is not None:
            conf = kubemod.netconf(node.name, self.kube.cni_kubeconfig, mtu)
        else:
            conf = {"cniVersion": "0.3.1", "name": plan.NETWORK, "type": "calico",
                    "datastore_type": "etcdv3", "etcd_endpoints": plan.ETCD_URL,
                    "nodename": node.name, "log_level": "warning", "mtu": mtu,
                    "ipam": {"type": "calico-ipam"}}
        env = {"PATH": f"{BIN}:/usr/sbin:/usr/bin:/sbin:/bin", "GRPC_ENABLE_FORK_SUPPORT": "false",
               "CNI_COMMAND": command, "CNI_CONTAINERID": container_id,
               "CNI_NETNS": f"/var/run/netns/{netns}", "CNI_IFNAME": "eth0",
               "CNI_PATH": str(BIN)}
        if args:  # CNI_ARGS, e.g. K8S_POD_NAMESPACE=x;K8S_POD_NAME=a;IP=10.244.1.10
            env["CNI_ARGS"] = args
        return proc.run(["nsenter", "-t", str(node.proc.pid), "-m", "-n", str(BIN / "calico")],
                        input=json.dumps(conf), timeout=60, env=env, check=False)

    def add_pod(self, node: Node, index: int) -> Pod:
        """A pod on `node` wired by its CNI plugin. On KDD first its Pod object, bound to
        the node, then the CNI as the kubelet runs it (CNI_ARGS naming the pod), then the
        kubelet's status report."""
        ns = self.lab.ns(f"{node.plan.index}p{index}")
        cid = plan.container_id(self.lab.prefix, node.name, index)
        name = plan.pod_name(node.name, index)
        args = ""
        if self.kube is not None:
            self.kube.create_pod(name, node.name)
            args = kubemod.cni_args(name, cid)
        r = self.cni(node, "ADD", cid, ns, args)
        if r.returncode != 0:
            self.lab.drop_ns(ns)
            if self.kube is not None:
                self.kube.delete_pod(name)
            raise ClusterError(f"CNI ADD failed on {node.name}: {r.stdout.strip()} "
                               f"{r.stderr.strip()}")
        try:
            result = json.loads(r.stdout)
            addr = ipaddress.ip_interface(result["ips"][0]["address"]).ip
        except (ValueError, KeyError, IndexError) as exc:
            raise ClusterError(f"CNI ADD on {node.name} returned no address: {r.stdout}") from exc
        assert isinstance(addr, ipaddress.IPv4Address)
        if self.kube is not None:
            self.kube.report_running(name, str(node.plan.ip.ip), str(addr))
        pod = Pod(node.name, index, ns, cid, addr)
        self.pods.append(pod)
        return pod

    def del_pod(self, pod: Pod) -> None:
        args = kubemod.cni_args(pod.kube_name, pod.container_id) if self.kube else ""
        r = self.cni(self.nodes[pod.node], "DEL", pod.container_id, pod.ns, args)
        if r.returncode != 0:
            raise ClusterError(f"CNI DEL failed on {pod.node}: {r.stdout.strip()} "
                               f"{r.stderr.strip()}")
        if self.kube is not None:
            self.kube.delete_pod(pod.kube_name)
        self.lab.drop_ns(pod.ns)
        self.pods.remove(pod)

    def endpoints(self) -> list[tuple[str, str, str, str]]:
        """(node, name, networks, interface) for every WorkloadEndpoint in the datastore
        (on KDD derived from the Pods)."""
        out = []
        for wep in Client(self.backend).list(WorkloadEndpoint):
            spec = wep.spec
            out.append((spec.node or "", wep.metadata.name,
                        ",".join(str(n) for n in spec.ip_networks), spec.interface_name or ""))
        return sorted(out)

    def ping(self, src: Pod | str, dst: ipaddress.IPv4Address, wait: float = 1.0) -> bool:
        ns = src.ns if isinstance(src, Pod) else src
        r = proc.run(["ip", "netns", "exec", ns, "ping", "-c", "1", "-W", str(wait), "-q",
                      str(dst)], timeout=wait + 10, check=False)
        return r.returncode == 0

    def matrix(self, pods: Sequence[Pod] | None = None,
               deadline: float = 30.0) -> dict[tuple[str, str], bool]:
        """Ping every ordered pair; retry failures until `deadline` seconds have passed."""
        pods = list(self.pods if pods is None else pods)
        result: dict[tuple[str, str], bool] = {}
        todo = [(a, b) for a in pods for b in pods if a is not b]
        end = time.monotonic() + deadline
        while True:
            procs = [(a, b, subprocess.Popen(
                ["ip", "netns", "exec", a.ns, "ping", "-c", "1", "-W", "1", "-q", str(b.ip)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)) for a, b in todo]
            failed = []
            for a, b, p in procs:
                ok = p.wait(15) == 0
                result[(a.label, b.label)] = ok
                if not ok:
                    failed.append((a, b))
            todo = failed
            if not todo or time.monotonic() > end:
                return result
            time.sleep(0.5)
