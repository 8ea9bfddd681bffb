"""Where the `calico` plugin gets its addresses: calico-ipam in-process (same configuration
and environment a separate process would get), or the IPAM plugin named by `ipam.type`,
executed from CNI_PATH as Calico does."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from calico_cni import ipam_plugin, netconf, spec
from calico_cni.spec import CNIError, Result
from libcalico import logger
from libcalico.datastore.api import Backend
from libcalico.errors import CommandFailed

log = logger.get("calico_cni")


def _find_plugin(name: str, path: tuple[str, ...]) -> str:
    for d in path:
        cand = os.path.join(d, name)
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    raise CNIError(spec.INVALID_NETWORK_CONFIG,
                   f"failed to find plugin {name!r} in path {list(path)}",
                   "install the IPAM plugin in a CNI_PATH directory or fix ipam.type")


def delegate(command: str, env: spec.Env, doc: Mapping[str, Any], environ: Mapping[str, str],
              args_override: str | None = None) -> str:
    """Run the IPAM plugin named by ipam.type with the same environment and the full
    network configuration. A 1.1.0 configuration is offered as 1.0.0 when the delegate
    does not speak 1.1.0 (Debian's plugins stop at 1.0.0)."""
    from libcalico import proc  # only delegated IPAM runs a process

    ipam_type = str((doc.get("ipam") or {}).get("type") or "")
    binary = _find_plugin(ipam_type, env.path)
    child_env = dict(environ)
    child_env["CNI_COMMAND"] = command
    if args_override is not None:
        child_env["CNI_ARGS"] = args_override
    args = child_env.get("CNI_ARGS", "")
    if args and "IgnoreUnknown=" not in args:
        # our K8S_* arguments would make a delegate without IgnoreUnknown refuse the call
        child_env["CNI_ARGS"] = "IgnoreUnknown=1;" + args
    body = dict(doc)
    for attempt in range(2):
        try:
            r = proc.run([binary], input=json.dumps(body), env=child_env, timeout=60,
                         check=False)
        except CommandFailed as exc:
            raise CNIError(spec.INTERNAL, f"IPAM plugin {ipam_type} failed: {exc}") from None
        if r.returncode == 0:
            return r.stdout
        try:
            err = json.loads(r.stdout)
        except json.JSONDecodeError:
            raise CNIError(spec.INTERNAL, f"IPAM plugin {ipam_type} failed (exit "
                           f"{r.returncode}): {r.stderr.strip() or r.stdout.strip()}"
                           ) from None
        if attempt == 0 and err.get("code") == spec.INCOMPATIBLE_VERSION \
                and body.get("cniVersion") == "1.1.0":
            body["cniVersion"] = "1.0.0"
            continue
        raise CNIError(int(err.get("code", spec.INTERNAL)), str(err.get("msg", "")),
                       str(err.get("details", "")))
    raise AssertionError("unreachable")


class Ipam:
    def __init__(self, env: spec.Env, doc: dict[str, Any], conf: netconf.NetConf,
                 environ: Mapping[str, str], backend: Backend, node: str) -> None:
        self.env, self.doc, self.conf, self.environ = env, doc, conf, environ
        self.backend, self.node = backend, node

    @property
    def in_process(self) -> bool:
        return self.conf.ipam.type == "calico-ipam"

    def add(self, doc: dict[str, Any] | None = None, ip: str | None = None) -> Result:
        doc = doc if doc is not None else self.doc
        env = self.env
        if ip is not None:
            args = dict(env.args)
            args["IP"] = ip
            env = replace(env, args=args,
                          raw_args=";".join(f"{k}={v}" for k, v in args.items()))
        if self.in_process:
            conf = netconf.parse(doc, self.conf.cni_version)
            return ipam_plugin.add(env, conf, self.backend, self.node)
        out = delegate("ADD", env, doc, self.environ,
                        args_override=env.raw_args if ip is not None else None)
        try:
            return spec.parse_result(json.loads(out))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CNIError(spec.DECODING_FAILURE,
                           f"cannot parse the IPAM plugin's result: {exc}") from None

    def delete(self) -> None:
        if self.in_process:
            ipam_plugin.delete(self.env, self.conf, self.backend)
        else:
            doc = dict(self.doc)
            ipam = dict(doc.get("ipam") or {})
            if ipam.get("subnet") in ("usePodCidr", "usePodCidrIPv6"):
                ipam["subnet"] = "0.0.0.0/0" if ipam["subnet"] == "usePodCidr" else "::/0"
                doc["ipam"] = ipam
            delegate("DEL", self.env, doc, self.environ)

    def release_quietly(self) -> None:
        try:
            self.delete()
        except Exception as exc:  # already failing: report the first error
            log.error("releasing addresses after a failed ADD: %s", exc)
