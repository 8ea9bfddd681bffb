"""The kubelab's files: a CA, the API server's serving certificate and the service-account
signing key (openssl CLI), and the admin kubeconfig. Moved out of apiserver.py, which
re-exports the public names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from libcalico import proc

ADMIN_USER = "calico-py-admin"


def _openssl(d: Path, *args: str) -> None:
    proc.run(["openssl", *args], timeout=30)


def _pki(d: Path) -> None:
    """CA, serving certificate (127.0.0.1, localhost and the in-cluster names), SA key."""
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl(d, "req", "-x509", *ec, "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt"),
             "-days", "7", "-subj", "/CN=calico-py-kubelab-ca",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    ext = d / "apiserver.ext"
    ext.write_text(
        "subjectAltName=IP:127.0.0.1,IP:10.101.0.1,DNS:localhost,DNS:kubernetes,"
        "DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n"
        "extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
    )
    _openssl(d, "req", *ec, "-keyout", str(d / "apiserver.key"), "-out", str(d / "apiserver.csr"),
             "-subj", "/CN=kube-apiserver")
    _openssl(d, "x509", "-req", "-in", str(d / "apiserver.csr"), "-CA", str(d / "ca.crt"),
             "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-out", str(d / "apiserver.crt"),
             "-days", "7", "-extfile", str(ext))
    _openssl(d, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-out", str(d / "sa.key"))
    _openssl(d, "pkey", "-in", str(d / "sa.key"), "-pubout", "-out", str(d / "sa.pub"))
    for f in ("ca.key", "apiserver.key", "sa.key"):
        (d / f).chmod(0o600)


def _kubeconfig(server: str, ca: Path, token: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "kubelab", "cluster": {"server": server,
                                                     "certificate-authority": str(ca)}}],
        "users": [{"name": ADMIN_USER, "user": {"token": token}}],
        "contexts": [{"name": "kubelab", "context": {"cluster": "kubelab", "user": ADMIN_USER}}],
        "current-context": "kubelab",
    }
