"""Cluster-wide kinds: ClusterInformation, KubeControllersConfiguration, IPAMConfiguration."""

from __future__ import annotations

# ruff: noqa: RUF009 - fields.fld/opt are dataclass field specifiers (dataclasses.field)
import enum
from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar

from libcalico.errors import FieldError
from libcalico.model import validate as v
from libcalico.model.fields import fld, opt
from libcalico.model.metadata import KindSpec, Metadata, register
from libcalico.model.resources_bgp import EnabledDisabled, LogLevel

PURE = True


def _only_default(res: ClusterInformation | IPAMConfiguration | KubeControllersConfiguration
                  ) -> list[FieldError]:
    if res.metadata.name != "default":
        return [FieldError("metadata.name", f"{res.KIND} must be named 'default', not"
                           f" {res.metadata.name!r}")]
    return []


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterInformationSpec:
    cluster_guid: str | None = opt("clusterGUID")
    cluster_type: str | None = opt()
    calico_version: str | None = opt()
    datastore_ready: bool | None = opt(ptr=True)
    variant: str | None = opt()


@dataclass(frozen=True, slots=True)
class ClusterInformation:
    KIND: ClassVar[str] = "ClusterInformation"
    metadata: Metadata
    spec: ClusterInformationSpec = fld(factory=ClusterInformationSpec)


register(KindSpec(ClusterInformation, check=_only_default))


# ---------------------------------------------------------------------------------------------


class KubeVirtPersistence(enum.StrEnum):
    ENABLED = "Enabled"
    DISABLED = "Disabled"


@dataclass(frozen=True, slots=True, kw_only=True)
class IPAMConfigurationSpec:
    strict_affinity: bool = fld(default=False, omitempty=False)
    max_blocks_per_host: int | None = opt(check=v.int_range(0, 2**31 - 1))
    auto_allocate_blocks: bool = fld(default=True, omitempty=False)
    kube_virt_vm_address_persistence: KubeVirtPersistence | None = opt(
        "kubeVirtVMAddressPersistence", ptr=True)


@dataclass(frozen=True, slots=True)
class IPAMConfiguration:
    KIND: ClassVar[str] = "IPAMConfiguration"
    metadata: Metadata
    spec: IPAMConfigurationSpec = fld(factory=IPAMConfigurationSpec)


def ipamconfig_check(cfg: IPAMConfiguration) -> list[FieldError]:
    errs = _only_default(cfg)
    s = cfg.spec
    if not s.strict_affinity and not s.auto_allocate_blocks:
        errs.append(FieldError("spec.autoAllocateBlocks", "cannot be false while strictAffinity"
                               " is false"))
    if s.max_blocks_per_host and not s.strict_affinity:
        errs.append(FieldError("spec.maxBlocksPerHost", "requires strictAffinity: true"))
    return errs


register(KindSpec(IPAMConfiguration, check=ipamconfig_check))


# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AutoHostEndpointConfig:
    auto_create: EnabledDisabled | None = opt()
    create_default_host_endpoint: str | None = opt()


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeControllerConfig:
    reconciler_period: timedelta | None = opt(ptr=True)
    sync_labels: EnabledDisabled | None = opt()
    host_endpoint: AutoHostEndpointConfig | None = opt()
    leak_grace_period: timedelta | None = opt(ptr=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconcilerConfig:
    reconciler_period: timedelta | None = opt(ptr=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadBalancerControllerConfig:
    assign_ips: str | None = opt(
        "assignIPs", check=v.one_of("AllServices", "RequestedServicesOnly"))


@dataclass(frozen=True, slots=True, kw_only=True)
class ControllersConfig:
    node: NodeControllerConfig | None = opt()
    policy: ReconcilerConfig | None = opt()
    workload_endpoint: ReconcilerConfig | None = opt()
    service_account: ReconcilerConfig | None = opt()
    namespace: ReconcilerConfig | None = opt()
    load_balancer: LoadBalancerControllerConfig | None = opt()


@dataclass(frozen=True, slots=True, kw_only=True)
class KubeControllersConfigurationSpec:
    log_severity_screen: LogLevel | None = opt()
    health_checks: EnabledDisabled | None = opt()
    etcd_v3_compaction_period: timedelta | None = opt("etcdV3CompactionPeriod", ptr=True)
    prometheus_metrics_port: int | None = opt(ptr=True, check=v.int_range(0, 65535))
    controllers: ControllersConfig = fld(factory=ControllersConfig)
    debug_profile_port: int | None = opt(ptr=True, check=v.int_range(0, 65535))


@dataclass(frozen=True, slots=True, kw_only=True)
class KubeControllersConfigurationStatus:
    running_config: KubeControllersConfigurationSpec | None = opt()
    environment_vars: dict[str, str] = fld(factory=dict)


@dataclass(frozen=True, slots=True)
class KubeControllersConfiguration:
    KIND: ClassVar[str] = "KubeControllersConfiguration"
    metadata: Metadata
    spec: KubeControllersConfigurationSpec = fld(factory=KubeControllersConfigurationSpec)
    status: KubeControllersConfigurationStatus = fld(factory=KubeControllersConfigurationStatus)


register(KindSpec(KubeControllersConfiguration, check=_only_default, has_status=True))
