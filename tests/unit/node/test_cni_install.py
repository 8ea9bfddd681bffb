"""The install-cni step's pure parts: Calico's placeholders and the kubeconfig it writes."""

from __future__ import annotations

import base64
import json

import pytest

from calico_node.cni_install import kubeconfig_text, refresh_interval, render_network_config
from libcalico.errors import ConfigError

TEMPLATE = ('{"name": "k8s-pod-network", "cniVersion": "0.3.1", "plugins": [{"type": "calico",'
            ' "nodename": "__KUBERNETES_NODE_NAME__", "mtu": __CNI_MTU__,'
            ' "kubernetes": {"kubeconfig": "__KUBECONFIG_FILEPATH__"}}]}')


def test_placeholders_are_filled() -> None:
    doc = json.loads(render_network_config(TEMPLATE, "node-a", "/etc/cni/net.d/kc", "1440"))
    (plugin,) = doc["plugins"]
    assert plugin == {"type": "calico", "nodename": "node-a", "mtu": 1440,
                      "kubernetes": {"kubeconfig": "/etc/cni/net.d/kc"}}


@pytest.mark.parametrize(("template", "mtu", "needle"), [
    (TEMPLATE, "big", "CNI_MTU='big'"),
    (TEMPLATE.replace("}]}", "}]"), "0", "not JSON"),
    ("[1]", "0", "not a JSON object"),
])
def test_bad_input_is_refused(template: str, mtu: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        render_network_config(template, "node-a", "/kc", mtu)


def test_kubeconfig_holds_server_ca_and_token() -> None:
    kc = json.loads(kubeconfig_text("https://10.96.0.1:443", b"PEM", "tok"))
    (cluster,) = kc["clusters"]
    assert cluster["cluster"] == {"server": "https://10.96.0.1:443",
                                  "certificate-authority-data": base64.b64encode(b"PEM").decode()}
    assert kc["users"] == [{"name": "calico", "user": {"token": "tok"}}]
    assert kc["current-context"] == "calico-context"


def test_token_refresh_interval() -> None:
    assert refresh_interval({}) == 6 * 3600  # a quarter of the 24 h token
    assert refresh_interval({"CNI_TOKEN_REFRESH_INTERVAL": "90m"}) == 5400
    for bad in ("soon", "0s"):
        with pytest.raises(ConfigError, match="CNI_TOKEN_REFRESH_INTERVAL"):
            refresh_interval({"CNI_TOKEN_REFRESH_INTERVAL": bad})
