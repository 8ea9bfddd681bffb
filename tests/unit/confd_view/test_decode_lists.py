"""BGPConfiguration list fields: absent or empty is fine, anything but a list names the field."""

from __future__ import annotations

import pytest

from confd.decode import DecodeError, validate_config

FIELDS = ("communities", "prefixAdvertisements", "serviceClusterIPs", "serviceExternalIPs",
          "serviceLoadBalancerIPs", "ignoredInterfaces")


@pytest.mark.parametrize("field", FIELDS)
def test_a_list_field_that_is_not_a_list_is_named(field: str) -> None:
    validate_config({field: None})
    validate_config({field: []})
    with pytest.raises(DecodeError, match=f"^spec.{field}: expected a list$") as err:
        validate_config({field: {"cidr": "10.0.0.0/8"}})
    assert err.value.field_path == f"spec.{field}"


def test_nested_communities_of_an_advertisement_are_checked_too() -> None:
    with pytest.raises(DecodeError) as err:
        validate_config({"prefixAdvertisements": [{"cidr": "10.0.0.0/8", "communities": "x"}]})
    assert err.value.field_path == "spec.prefixAdvertisements[0].communities"
    assert str(err.value).endswith("expected a list")
