from tests.fixtures.etcd import EtcdServer


def test_etcd_fixture_roundtrip(etcd: EtcdServer) -> None:
    etcd.ctl("put", "/calico/x", "1")
    assert "/calico/x" in etcd.ctl("get", "/calico/x")
    etcd.wipe()
    assert etcd.ctl("get", "/calico/x").strip() == ""
