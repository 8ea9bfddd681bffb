from __future__ import annotations

import pytest

from felix import config
from libcalico.errors import ConfigError


def test_defaults_are_calicos() -> None:
    c = config.load({})
    assert c.interface_prefix == ("cali",)
    assert c.chain_insert_mode == "insert"
    assert c.iptables_backend == "auto"
    assert c.default_endpoint_to_host_action == "DROP"
    assert c.vxlan_vni == 4096 and c.vxlan_port == 4789 and c.vxlan_mtu == 0
    assert c.route_refresh_interval == 90 and c.iptables_refresh_interval == 180
    assert c.health_port == 9099 and c.prometheus_metrics_port == 9091
    assert config.Port("tcp", 22) in c.failsafe_inbound_host_ports
    assert config.Port("udp", 53) in c.failsafe_outbound_host_ports


def test_precedence_env_file_node_global() -> None:
    glob = {"vxlanVNI": 10, "healthPort": 1, "chainInsertMode": "Append", "vxlanPort": 5000}
    node = {"vxlanVNI": 20, "healthPort": 2, "chainInsertMode": "insert"}
    file_values = {"VXLANVNI": "30", "HealthPort": "3"}
    env = {"FELIX_VXLANVNI": "40"}
    c = config.load(env, file_values, node, glob)
    assert c.vxlan_vni == 40          # env wins
    assert c.health_port == 3         # file beats datastore
    assert c.chain_insert_mode == "insert"   # per-node beats global
    assert c.vxlan_port == 5000       # global beats default
    assert ("VXLANVNI", "environment") in c.sources


def test_env_names_are_case_insensitive() -> None:
    assert config.load({"FELIX_interfaceprefix": "tap,cali"}).interface_prefix == ("tap", "cali")


def test_local_params_not_taken_from_datastore() -> None:
    c = config.load({}, {}, None, {"felixHostname": "evil"})
    assert c.hostname == ""


def test_bad_value_names_parameter_and_source() -> None:
    with pytest.raises(ConfigError, match="VXLANVNI from environment"):
        config.load({"FELIX_VXLANVNI": "not-a-number"})
    # Datastore values are untrusted input: ignored with a warning, lower source applies.
    c = config.load({}, {}, {"defaultEndpointToHostAction": "Explode"},
                    {"defaultEndpointToHostAction": "Accept"})
    assert c.default_endpoint_to_host_action == "ACCEPT"
    assert any("DefaultEndpointToHostAction from FelixConfiguration node" in w
               for w in c.warnings)
    with pytest.raises(ConfigError, match="InterfacePrefix"):
        config.load({"FELIX_INTERFACEPREFIX": "ca li;rm"})


def test_durations_and_yaml_ports() -> None:
    c = config.load({}, {}, None, {"routeRefreshInterval": "1m30s",
                                   "failsafeInboundHostPorts": [{"protocol": "UDP",
                                                                 "port": 68}]})
    assert c.route_refresh_interval == 90
    assert c.failsafe_inbound_host_ports == (config.Port("udp", 68),)


def test_config_file_parsing() -> None:
    vals = config.parse_file("[global]\nMetadataAddr = None\nLogSeverityScreen = debug\n")
    assert config.load({}, vals).log_severity_screen == "DEBUG"
    with pytest.raises(ConfigError):
        config.parse_file("no section here")
