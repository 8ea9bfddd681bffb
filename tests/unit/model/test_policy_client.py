"""The client's tier rules for policies (Calico's clientv3): a policy needs its tier, a missing
built-in tier is created, built-in tiers cannot be deleted."""

from __future__ import annotations

from typing import Any

import pytest

from libcalico.client import Client
from libcalico.datastore.memory import MemoryBackend
from libcalico.errors import NotFound, ValidationError
from libcalico.model import codec, keys
from libcalico.model import resources as r


def _policy(kind: str, tier: str | None = None, name: str = "p") -> Any:
    md: dict[str, Any] = {"name": name}
    if kind in ("NetworkPolicy", "StagedNetworkPolicy"):
        md["namespace"] = "prod"
    spec: dict[str, Any] = {"ingress": [{"action": "Allow"}]}
    if tier:
        spec["tier"] = tier
    return codec.decode({"apiVersion": "projectcalico.org/v3", "kind": kind, "metadata": md,
                         "spec": spec})


@pytest.mark.parametrize("kind", ["NetworkPolicy", "GlobalNetworkPolicy",
                                  "StagedNetworkPolicy", "StagedGlobalNetworkPolicy"])
def test_policy_in_a_missing_tier_is_refused(kind: str) -> None:
    client = Client(MemoryBackend())
    with pytest.raises(ValidationError) as info:
        client.create(_policy(kind, "security"))
    assert info.value.errors[0].path == "spec.tier"
    assert "tier 'security' does not exist" in info.value.errors[0].reason
    client.create(r.Tier(r.Metadata("security"), r.TierSpec(order=10.0)))
    made = client.create(_policy(kind, "security"))
    assert made.metadata.labels == {r.LABEL_TIER: "security"}
    with pytest.raises(ValidationError):
        client.apply(_policy(kind, "other", name="q"))


@pytest.mark.parametrize("tier", ["default", "kube-admin", "kube-baseline", None])
def test_a_missing_builtin_tier_is_created(tier: str | None) -> None:
    backend = MemoryBackend()
    client = Client(backend)
    client.apply(_policy("GlobalNetworkPolicy", tier))
    name = tier or "default"
    stored = client.get(r.Tier, name)
    assert stored.spec == r.builtin_tier(name).spec
    assert stored.metadata.uid  # created like any resource
    # Present already: kept as it is.
    client.create(_policy("NetworkPolicy", tier, name="again"))
    assert client.get(r.Tier, name).metadata.uid == stored.metadata.uid
    assert keys.resource_key("Tier", name) in [kv.key for kv in backend.list(
        keys.resource_prefix("Tier")).kvs]


def test_builtin_tiers_cannot_be_deleted() -> None:
    client = Client(MemoryBackend())
    for name in r.BUILTIN_TIERS:
        client.create(r.builtin_tier(name))
        with pytest.raises(ValidationError, match="built in and cannot be deleted"):
            client.delete(r.Tier, name)
    client.create(r.Tier(r.Metadata("mine"), r.TierSpec(order=1.0)))
    client.delete(r.Tier, "mine")
    with pytest.raises(NotFound):
        client.get(r.Tier, "mine")


def test_update_does_not_recheck_the_tier() -> None:
    """clientv3 checks the tier on create only."""
    client = Client(MemoryBackend())
    client.create(r.Tier(r.Metadata("t"), r.TierSpec(order=1.0)))
    made = client.create(_policy("GlobalNetworkPolicy", "t"))
    client.backend.delete(keys.resource_key("Tier", "t"))
    client.update(made)
