"""Template edits under a running watch-mode calico-confd (real etcd, real `bird -p`): a good
edit reaches dest without a restart; an edit that fails its check or fails to load leaves dest
as it was, and the log and the metrics say why."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import pytest

from tests.fixtures.etcd import EtcdServer
from tests.integration.confd_engine import cluster as c
from tests.integration.confd_engine.test_watch import seed, watch_args

pytestmark = pytest.mark.etcd


def metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r"^(confd_\w+) (\S+)$", text, re.M)}


def edit(path: Path, text: str) -> None:
    """Save as an editor does: a new file renamed over the old one."""
    tmp = path.with_name(f".{path.name}.swp")
    tmp.write_text(text)
    tmp.replace(path)


def test_template_edits_are_swapped_in_or_refused(etcd: EtcdServer, tmp_path: Path) -> None:
    seed(etcd.endpoint)
    confdir = c.make_confdir(tmp_path, reload_log=tmp_path / "reloads", copy_templates=True)
    template = confdir / "templates" / "bird.cfg.template"
    original = template.read_text()
    bird = tmp_path / "out" / c.CONFIG_DIR / "bird.cfg"
    with c.daemon(etcd.endpoint, "n1", *watch_args(confdir, tmp_path / "out"),
                  "--metrics-port", "0", "--metrics-host", "127.0.0.1",
                  log_path=tmp_path / "confd.log") as d:
        c.wait_for("first render", lambda: "Mesh_10_20_0_3" in c.text(bird), log=d.log)
        c.wait_for("template watch", lambda: "for template edits" in d.log(), log=d.log)
        found = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", d.log())
        assert found, d.log()
        port = int(found.group(1))
        assert metrics(port)["confd_template_load_success"] == 1

        # 1. A good edit: rendered, checked and swapped in, no restart.
        edit(template, original + "# Edited by the network team.\n")
        c.wait_for("edited template in dest",
                   lambda: "# Edited by the network team." in c.text(bird), log=d.log)
        c.wait_for("load counted", lambda: metrics(port)["confd_template_loads_total"] == 2,
                   log=d.log)
        good = c.text(bird)

        # 2. An edit BIRD rejects: dest stays, the log and the metric say why.
        edit(template, original + "protocol bogus_thing { }\n")
        c.wait_for("refused edit", lambda: "template reload failed" in d.log()
                   and metrics(port)["confd_template_errors_total"] == 1, log=d.log)
        assert c.text(bird) == good
        assert metrics(port)["confd_template_load_success"] == 0
        assert "bird.toml" in d.log().split("template reload failed", 1)[1]

        # 3. An edit that does not even load (syntax error): the same.
        edit(template, original + "{% if %}\n")
        c.wait_for("second refusal", lambda: d.log().count("template reload failed") == 2
                   and metrics(port)["confd_template_errors_total"] == 2, log=d.log)
        assert "syntax error" in d.log().rsplit("template reload failed", 1)[1]
        assert c.text(bird) == good

        # The datastore is still followed, with the last good templates.
        be = c.backend(etcd.endpoint)
        try:
            c.put(be, "BGPPeer", "edge", {"peerIP": "10.20.0.254", "asNumber": 65001})
        finally:
            be.close()
        c.wait_for("peer", lambda: "Global_10_20_0_254" in c.text(bird), log=d.log)
        assert "# Edited by the network team." in c.text(bird)
        assert "bogus_thing" not in c.text(bird)

        # 4. Fixed: taken again.
        edit(template, original)
        c.wait_for("fixed", lambda: metrics(port)["confd_template_load_success"] == 1,
                   log=d.log)
        c.wait_for("back to the shipped text",
                   lambda: "# Edited by the network team." not in c.text(bird), log=d.log)
        assert "Traceback" not in d.log()
