"""The composition root: builds the enabled controllers, one owner loop each, and runs them
until stopped. No logic of its own."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Protocol

from calico_kube_controllers import gc, mirror, policy
from calico_kube_controllers.config import Config
from calico_kube_controllers.loop import Loop
from calico_kube_controllers.node import NodeController
from calico_kube_controllers.status import Status
from libcalico.client import Client
from libcalico.datastore import connect, kubernetes
from libcalico.datastore.api import Backend
from libcalico.datastore.kubernetes_client import KubeClient
from libcalico.errors import NotFound
from libcalico.model import k8s_networkpolicy
from libcalico.model.resources import KubeControllersConfiguration

log = logging.getLogger(__name__)


class Controller(Protocol):
    name: str

    def reconcile(self) -> object: ...
    def synced(self) -> bool: ...
    def start(self, loop_kick: Callable[[str], None]) -> None: ...
    def stop(self) -> None: ...


def leak_grace_s(backend: Backend) -> float:
    """The `default` KubeControllersConfiguration's leakGracePeriod, else Calico's 15m."""
    try:
        kcc = Client(backend).get(KubeControllersConfiguration, "default")
    except NotFound:
        return gc.DEFAULT_LEAK_GRACE_PERIOD_S
    node = kcc.spec.controllers.node
    grace = node.leak_grace_period if node is not None else None
    return gc.DEFAULT_LEAK_GRACE_PERIOD_S if grace is None else \
        grace / timedelta(seconds=1)


class Daemon:
    def __init__(self, cfg: Config, *, backend: Backend | None = None,
                 kube: KubeClient | None = None, status: Status | None = None) -> None:
        self.cfg = cfg
        self.backend = backend or connect(cfg.datastore)
        self.kube = kube or KubeClient(kubernetes.access(cfg.datastore),
                                       timeout=cfg.datastore.timeout)
        self.status = status or Status(cfg.status_file)
        self.controllers: list[Controller] = []
        self.loops: list[Loop] = []
        self._stopped = threading.Event()
        for name in cfg.dropped:
            log.warning("controller %s runs only on the etcd datastore: not started", name)
        for name in cfg.enabled:
            self.controllers.append(self._build(name))

    def _build(self, name: str) -> Controller:
        if name == "node":
            return NodeController(self.backend, self.kube, kdd=self.cfg.kdd,
                                  leak_grace_s=leak_grace_s(self.backend))
        if name == "namespace":
            return mirror.namespace_mirror(self.backend, self.kube)
        if name == "serviceaccount":
            return mirror.serviceaccount_mirror(self.backend, self.kube)
        if name == "workloadendpoint":
            return mirror.WorkloadEndpointMirror(self.backend, self.kube)
        return mirror.PolicyMirror(self.backend, self.kube,
                                   policy.converter() or k8s_networkpolicy.etcd_mirror)

    def start(self) -> None:
        for c in self.controllers:
            interval = c.interval_s if isinstance(c, NodeController) else 300.0
            loop = Loop(c.name, c.reconcile, self.status, interval_s=interval, ready=c.synced)
            self.loops.append(loop)
            loop.start()
            c.start(loop.kick)
        log.info("calico-kube-controllers started: datastore=%s controllers=%s",
                 self.cfg.datastore.datastore_type.value, ",".join(self.cfg.enabled))

    def wait(self) -> None:
        self._stopped.wait()

    def stop(self) -> None:
        for c in self.controllers:
            c.stop()
        for loop in self.loops:
            loop.stop()
        self._stopped.set()
