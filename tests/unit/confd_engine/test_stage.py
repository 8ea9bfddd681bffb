"""Stage / compare / check / replace (confd.stage) with an injected shell."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

import pytest

from confd import resource, stage
from libcalico import proc
from libcalico.errors import CommandFailed


class FakeShell:
    """Records command lines; fails those containing a marker; can inspect the stage file."""

    def __init__(self, fail_on: str = "") -> None:
        self.calls: list[str] = []
        self.fail_on = fail_on
        self.seen: dict[str, str] = {}

    def __call__(self, command: str) -> proc.Completed:
        self.calls.append(command)
        path = command.rsplit(" ", 1)[-1]
        if os.path.exists(path):
            self.seen[path] = Path(path).read_text()
        if self.fail_on and self.fail_on in command:
            raise CommandFailed(["/bin/sh", "-c", command], 1, "", "x.cfg:3:1 syntax error")
        return proc.Completed(("/bin/sh", "-c", command), 0, "", "")


def make(tmp_path: Path, **fields: object) -> resource.TemplateResource:
    base: Mapping[str, object] = {
        "src": "t.template", "dest": str(tmp_path / "out" / "bird.cfg"),
        "check_cmd": "check -c {{.src}}", "reload_cmd": "reload", "mode": "0644",
    }
    lines = ["[template]"]
    for k, v in {**base, **fields}.items():
        lines.append(f"{k} = {v!r}".replace("'", '"'))
    return resource.parse("\n".join(lines), name="bird.toml", node="n1",
                          default_uid=os.geteuid(), default_gid=os.getegid())


def test_first_sync_writes_dest_after_checking_the_stage_file(tmp_path: Path) -> None:
    r = make(tmp_path)
    sh = FakeShell()
    out = stage.sync(r, "router id 1.2.3.4;\n", stage.Options(), sh)
    assert out.changed
    assert r.dest.read_text() == "router id 1.2.3.4;\n"
    assert stat.S_IMODE(r.dest.stat().st_mode) == 0o644
    (checked,) = sh.calls
    staged = checked.split(" -c ")[1]
    assert Path(staged).parent == r.dest.parent and Path(staged).name.startswith(".bird.cfg")
    assert sh.seen[staged] == "router id 1.2.3.4;\n"
    assert not Path(staged).exists(), "stage file removed"
    assert sorted(os.listdir(r.dest.parent)) == ["bird.cfg"]


def test_unchanged_content_leaves_dest_alone(tmp_path: Path) -> None:
    r = make(tmp_path)
    stage.sync(r, "a\n", stage.Options(), FakeShell())
    before = r.dest.stat()
    sh = FakeShell()
    out = stage.sync(r, "a\n", stage.Options(), sh)
    after = r.dest.stat()
    assert not out.changed
    assert sh.calls == [], "no check when nothing changed"
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert sorted(os.listdir(r.dest.parent)) == ["bird.cfg"]


def test_mode_change_alone_counts_as_a_change(tmp_path: Path) -> None:
    r = make(tmp_path)
    stage.sync(r, "a\n", stage.Options(), FakeShell())
    os.chmod(r.dest, 0o666)
    out = stage.sync(r, "a\n", stage.Options(), FakeShell())
    assert out.changed
    assert stat.S_IMODE(r.dest.stat().st_mode) == 0o644


def test_failed_check_leaves_dest_untouched(tmp_path: Path) -> None:
    r = make(tmp_path)
    stage.sync(r, "good\n", stage.Options(), FakeShell())
    inode = r.dest.stat().st_ino
    with pytest.raises(stage.SyncError, match=r"bird\.toml: check_cmd failed.*syntax error"):
        stage.sync(r, "bad\n", stage.Options(), FakeShell(fail_on="check"))
    assert r.dest.read_text() == "good\n"
    assert r.dest.stat().st_ino == inode
    assert sorted(os.listdir(r.dest.parent)) == ["bird.cfg"], "stage file removed"


def test_failed_check_on_first_run_writes_nothing(tmp_path: Path) -> None:
    r = make(tmp_path)
    with pytest.raises(stage.SyncError):
        stage.sync(r, "bad\n", stage.Options(), FakeShell(fail_on="check"))
    assert not r.dest.exists()


def test_sync_only_skips_the_check(tmp_path: Path) -> None:
    r = make(tmp_path)
    sh = FakeShell(fail_on="check")
    assert stage.sync(r, "x\n", stage.Options(sync_only=True), sh).changed
    assert sh.calls == []
    assert r.dest.read_text() == "x\n"


def test_noop_writes_nothing_and_returns_a_diff(tmp_path: Path) -> None:
    r = make(tmp_path)
    stage.sync(r, "line1\nline2\n", stage.Options(), FakeShell())
    sh = FakeShell()
    out = stage.sync(r, "line1\nline3\n", stage.Options(noop=True), sh)
    assert out.changed
    assert "-line2\n+line3\n" in out.diff
    assert f"--- {r.dest}" in out.diff
    assert r.dest.read_text() == "line1\nline2\n"
    assert sh.calls == []
    assert sorted(os.listdir(r.dest.parent)) == ["bird.cfg"]
    assert stage.sync(r, "line1\nline2\n", stage.Options(noop=True), sh).diff == ""


def test_noop_on_missing_dest_creates_nothing(tmp_path: Path) -> None:
    r = make(tmp_path)
    out = stage.sync(r, "x\n", stage.Options(noop=True), FakeShell())
    assert "+++ " in out.diff and "+x" in out.diff
    assert not r.dest.parent.exists()


def test_keep_stage_file_keeps_a_rejected_stage_for_inspection(tmp_path: Path) -> None:
    r = make(tmp_path)
    stage.sync(r, "good\n", stage.Options(keep_stage_file=True), FakeShell())
    assert sorted(os.listdir(r.dest.parent)) == ["bird.cfg"], "the stage became dest"
    with pytest.raises(stage.SyncError):
        stage.sync(r, "bad\n", stage.Options(keep_stage_file=True), FakeShell(fail_on="check"))
    names = sorted(os.listdir(r.dest.parent))
    assert len(names) == 2 and names[0].startswith(".bird.cfg") and names[1] == "bird.cfg"
    assert (r.dest.parent / names[0]).read_text() == "bad\n"
    assert r.dest.read_text() == "good\n"


def test_password_file_is_never_group_or_world_readable(tmp_path: Path) -> None:
    r = make(tmp_path, mode="0644")
    text = 'protocol bgp Node_1 {\n  password "s3cret";\n}\n'
    stage.sync(r, text, stage.Options(), FakeShell())
    assert stat.S_IMODE(r.dest.stat().st_mode) == 0o600
    # without the password the configured mode comes back
    stage.sync(r, "protocol bgp Node_1 {\n}\n", stage.Options(), FakeShell())
    assert stat.S_IMODE(r.dest.stat().st_mode) == 0o644


def test_holds_secret() -> None:
    assert stage.holds_secret('  password "x";')
    assert not stage.holds_secret("# no passwords here\nfunction password_free() {}")


def test_unset_mode_keeps_existing_dest_mode(tmp_path: Path) -> None:
    r = make(tmp_path, mode="0600")
    stage.sync(r, "a\n", stage.Options(), FakeShell())
    r2 = resource.parse(f'[template]\nsrc="t"\ndest="{r.dest}"\n', name="b.toml", node="n",
                        default_uid=os.geteuid(), default_gid=os.getegid())
    stage.sync(r2, "b\n", stage.Options(), FakeShell())
    assert stat.S_IMODE(r.dest.stat().st_mode) == 0o600


def test_reload_failure_names_the_resource() -> None:
    with pytest.raises(stage.SyncError, match=r"bird\.toml: reload_cmd failed"):
        stage.reload("bird.toml", "reload", FakeShell(fail_on="reload"))


def test_noop_diff_never_shows_a_password(tmp_path: Path) -> None:
    r = make(tmp_path)
    stage.sync(r, 'protocol bgp A {\n  password "old-secret";\n}\n', stage.Options(), FakeShell())
    out = stage.sync(r, 'protocol bgp A {\n  password "new-secret";\n}\n',
                     stage.Options(noop=True), FakeShell())
    assert out.changed
    assert "secret" not in out.diff
    assert '-  password "<redacted>";' in out.diff and '+  password "<redacted>";' in out.diff


def test_plain_commands_are_run_without_a_shell_and_the_rest_with_one() -> None:
    assert not stage.needs_shell("bird -p -c /etc/calico/confd/config/.bird.cfgA1b2c3")
    assert not stage.needs_shell("birdc -s /var/run/calico/bird.ctl configure")
    for command in ("echo bird >> /tmp/reloads", "a | b", "a; b", "a && b", "x=1 a", "a $HOME",
                    "a `b`", "a 'b c'", 'a "b"', "a *", "a ~/x", "a {b,c}", "a # c", "a\nb",
                    "sv hup bird || true", "", "  "):
        assert stage.needs_shell(command), command
