"""Sigma loader: pySigma's modifiers and condition tree into the model, with precise diagnostics."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from conftest import rule_ids, run_events
from shellsieve.compile.ruleset import compile_rules
from shellsieve.diagnostics import Code, Diagnostic
from shellsieve.model.correlation import Correlation
from shellsieve.model.expr import AllOf, AnyOf, Expr, Not, Op, Predicate
from shellsieve.model.rule import Rule, Sequence, Threat
from shellsieve.rules.sigma import load_sigma

SIGMA = Path(__file__).resolve().parents[2] / "shared" / "rulesets" / "sigma"
SEED = SIGMA / "windows" / "process_creation" / "proc_creation_win_webshell_tool_recon.yml"
RID = "11111111-2222-3333-4444-555555555555"
RID2 = "22222222-2222-3333-4444-555555555555"
# no product, no mapped category: the value and condition tests compare the query alone
# (TestLogsource adds the OS and the event kind)
HEADER = f"title: t\nid: {RID}\nlogsource: {{service: test}}\n"  # 3 lines
BODY = "detection:\n  sel:\n    Image: x\n  condition: sel\n"


def _load(tmp_path: Path, text: str) -> tuple[list[Rule], list[Diagnostic], Path]:
    f = tmp_path / "rule.yml"
    f.write_text(text)
    rules, diags = load_sigma(f)
    return rules, diags, f


def _det(tmp_path: Path, detection: str) -> tuple[list[Rule], list[Diagnostic]]:
    """Load HEADER + `detection:` + the given block (its first line is line 5 of the file)."""
    rules, diags, _ = _load(tmp_path, HEADER + "detection:\n" + detection)
    return rules, diags


def _query(tmp_path: Path, detection: str) -> Expr:
    rules, diags = _det(tmp_path, detection)
    assert not diags, [d.render() for d in diags]
    (rule,) = rules
    assert not isinstance(rule.query, Sequence)
    return rule.query


def _sel(tmp_path: Path, items: str) -> Expr:
    """The query of `sel:` holding the given field lines, with `condition: sel`."""
    return _query(tmp_path, "  sel:\n" + items + "  condition: sel\n")


def P(field: str, op: Op, *values: str | int | bool, cased: bool = False) -> Predicate:  # noqa: N802  short, as the rule tables read it
    return Predicate(field, op, values, cased)


class TestLogsource:
    """A Sigma rule runs where a SIEM would run it: on events of its logsource's OS."""

    RULE = ("title: t\nid: " + RID + "\nlogsource: {category: process_creation, product: windows}\n"
            "detection:\n  sel:\n    Image|endswith: '.exe'\n  condition: not sel\n")

    def test_product_and_category_are_host_os_and_event_category_conditions(self, tmp_path: Path) -> None:
        rules, diags, _ = _load(tmp_path, self.RULE)
        assert diags == []
        assert rules[0].query == AllOf((P("host.os.type", Op.EQ, "windows"), P("event.category", Op.EQ, "process"),
                                        Not(P("process.executable", Op.ENDSWITH, ".exe"))))

    def test_network_rule_leaves_process_starts_alone(self, tmp_path: Path) -> None:
        """SigmaHQ's "Linux Reverse Shell Indicator" (network_connection, Image ends with /bin/bash)
        fired on every bash process start before the category became a condition."""
        rule = ("title: t\nid: " + RID + "\nlogsource: {category: network_connection, product: linux}\n"
                "detection:\n  sel:\n    Image|endswith: /bin/bash\n  condition: sel\n")
        rules, _, _ = _load(tmp_path, rule)
        ruleset, _ = compile_rules(rules)
        bash = {"host": {"os": {"type": "linux"}}, "process": {"executable": "/bin/bash"}}
        events = [{**bash, "event": {"category": ["process"], "type": ["start"]}},
                  {**bash, "event": {"category": ["network"], "type": ["start"]}}]
        assert [bool(rule_ids(d)) for d in run_events(ruleset, events)] == [False, True]

    def test_windows_rule_leaves_linux_and_unknown_events_alone(self, tmp_path: Path) -> None:
        """Without the condition this negation fires on every Linux event (and it has no anchor,
        so every line would be decoded)."""
        rules, _, _ = _load(tmp_path, self.RULE)
        ruleset, diags = compile_rules(rules)
        assert not [d for d in diags if d.code is Code.NO_ANCHOR]
        proc = {"event": {"category": ["process"]}}
        events = [{**proc, "host": {"os": {"type": "linux"}}, "process": {"executable": "/usr/bin/id"}},
                  {**proc, "process": {"executable": "/usr/bin/id"}},
                  {**proc, "host": {"os": {"type": "windows"}}, "process": {"executable": "C:\\x\\a.com"}},
                  {**proc, "host": {"os": {"type": "windows"}}, "process": {"executable": "C:\\x\\a.exe"}}]
        assert [bool(rule_ids(d)) for d in run_events(ruleset, events)] == [False, False, True, False]


class TestSeedRule:
    @pytest.fixture
    def rule(self) -> Rule:
        if not SEED.exists():
            pytest.skip(f"seed rule not found at {SEED} (../shared/rulesets is not checked out)")
        (rule,), diags = load_sigma(SEED)
        assert diags == []
        return rule

    def test_metadata(self, rule: Rule) -> None:
        """Id, title, level, severity, risk score, tags, references and location come from the YAML."""
        assert rule.id == "f64e5c19-879c-4bae-b471-6d84c8339677"
        assert rule.name == "Webshell Tool Reconnaissance Activity"
        assert (rule.ruleset, rule.language, rule.level, rule.severity, rule.risk_score) == (
            "sigma", "sigma", "high", "high", 73)
        assert [(t.tactic_id, t.tactic_name, t.technique_id, t.technique_name, t.subtechnique_id, t.subtechnique_name)
                for t in rule.threats] == [("TA0003", "Persistence", None, None, None, None),
                                           (None, None, "T1505", "Server Software Component", "T1505.003", "Web Shell")]
        assert rule.threats[1].subtechnique_reference == "https://attack.mitre.org/techniques/T1505/003/"
        assert (rule.uuid, rule.version, rule.category) == (rule.id, "2023-11-09", "process_creation")
        assert rule.author == ("Cian Heasley", "Florian Roth (Nextron Systems)")
        assert rule.references == (
            "https://ragged-lab.blogspot.com/2020/07/webshells-automating-reconnaissance.html",)
        assert rule.description.startswith("Detects processes spawned from web servers")
        assert (rule.location.path, rule.location.line) == (str(SEED), 1)

    def test_condition_shape(self, rule: Rule) -> None:
        """`1 of selection_webserver_* and selection_recon` is AllOf(AnyOf(three selections), recon),
        on Windows process events (`product: windows`, `category: process_creation`)."""
        q = rule.query
        assert isinstance(q, AllOf) and len(q.terms) == 4
        os_type, category, web, recon = q.terms
        assert (os_type, category) == (P("host.os.type", Op.EQ, "windows"), P("event.category", Op.EQ, "process"))
        assert isinstance(web, AnyOf) and len(web.terms) == 3
        image, tomcat1, tomcat2 = web.terms
        parent = "process.parent.executable"
        assert image == P(parent, Op.ENDSWITH, "\\caddy.exe", "\\httpd.exe", "\\nginx.exe", "\\php-cgi.exe",
                          "\\w3wp.exe", "\\ws_tomcatservice.exe")
        java = P(parent, Op.ENDSWITH, "\\java.exe", "\\javaw.exe")
        assert tomcat1 == AllOf((java, P(parent, Op.CONTAINS, "-tomcat-", "\\tomcat")))
        assert tomcat2 == AllOf((java, P("process.command_line", Op.CONTAINS, "CATALINA_HOME", "catalina.jar")))
        assert recon == P("process.command_line", Op.CONTAINS, "perl --help", "perl -h", "python --help",
                          "python -h", "python3 --help", "python3 -h", "wget --help")


class TestValues:
    def test_plain_value_is_case_insensitive_eq(self, tmp_path: Path) -> None:
        """A plain value without wildcards is a case-insensitive whole-value EQ; a list is one predicate."""
        assert _sel(tmp_path, "    Image: ['/bin/sh', '/bin/bash']\n") == P(
            "process.executable", Op.EQ, "/bin/sh", "/bin/bash")

    def test_startswith_endswith(self, tmp_path: Path) -> None:
        """startswith and endswith become their own ops with literal values."""
        q = _sel(tmp_path, "    Image|startswith: '/tmp/'\n    CommandLine|endswith: ' -i'\n")
        assert q == AllOf((P("process.executable", Op.STARTSWITH, "/tmp/"),
                           P("process.command_line", Op.ENDSWITH, " -i")))

    def test_contains_all(self, tmp_path: Path) -> None:
        """contains|all needs every value: one CONTAINS predicate per value under AllOf."""
        q = _sel(tmp_path, "    CommandLine|contains|all: ['curl', '| sh']\n")
        assert q == AllOf((P("process.command_line", Op.CONTAINS, "curl"),
                           P("process.command_line", Op.CONTAINS, "| sh")))

    def test_windash(self, tmp_path: Path) -> None:
        """windash expands the dash into its five forms, OR-ed into one CONTAINS predicate."""
        q = _sel(tmp_path, "    CommandLine|windash|contains: ' -enc '\n")
        assert q == P("process.command_line", Op.CONTAINS,
                      " -enc ", " /enc ", " \u2013enc ", " \u2014enc ", " \u2015enc ")

    def test_windash_with_all_keeps_alternatives(self, tmp_path: Path) -> None:
        """Under |all each value must hold, but the windash forms of one value stay alternatives."""
        q = _sel(tmp_path, "    CommandLine|windash|contains|all: [' -a ', 'x']\n")
        assert isinstance(q, AllOf) and len(q.terms) == 2
        first = q.terms[0]
        assert isinstance(first, Predicate) and first.op is Op.CONTAINS and len(first.values) == 5
        assert q.terms[1] == P("process.command_line", Op.CONTAINS, "x")

    def test_base64offset(self, tmp_path: Path) -> None:
        """base64offset|contains yields its three encodings as CONTAINS values."""
        q = _sel(tmp_path, "    CommandLine|base64offset|contains: 'http://'\n")
        assert q == P("process.command_line", Op.CONTAINS, "aHR0cDovL", "h0dHA6Ly", "odHRwOi8v")

    def test_re_with_i(self, tmp_path: Path) -> None:
        """re is case-sensitive; re|i is not; the pattern text is kept as written."""
        q = _sel(tmp_path, "    CommandLine|re: 'nc\\s+-e'\n    Image|re|i: '/(ba|z)?sh$'\n")
        assert q == AllOf((P("process.command_line", Op.REGEX, r"nc\s+-e", cased=True),
                           P("process.executable", Op.REGEX, "/(ba|z)?sh$")))

    def test_re_multiline_dotall(self, tmp_path: Path) -> None:
        """re|m and re|s become inline (?m) / (?s) prefixes."""
        q = _sel(tmp_path, "    CommandLine|re|m|s: '^a.*b'\n")
        assert q == P("process.command_line", Op.REGEX, "(?m)(?s)^a.*b", cased=True)

    def test_re_lookaround_is_accepted(self, tmp_path: Path) -> None:
        """Look-around is valid Sigma `re` (the compiler confirms it with a bounded engine), not a parse error."""
        q = _sel(tmp_path, "    CommandLine|re: 'a(?!b)c'\n")
        assert q == P("process.command_line", Op.REGEX, "a(?!b)c", cased=True)

    def test_cidr(self, tmp_path: Path) -> None:
        """cidr keeps every network in one CIDR predicate."""
        q = _sel(tmp_path, "    DestinationIp|cidr: ['10.0.0.0/8', 'fc00::/7']\n")
        assert q == P("destination.ip", Op.CIDR, "10.0.0.0/8", "fc00::/7")

    def test_exists(self, tmp_path: Path) -> None:
        """exists: true is EXISTS; exists: false is its negation."""
        q = _sel(tmp_path, "    User|exists: true\n    ParentUser|exists: false\n")
        assert q == AllOf((P("winlog.event_data.User", Op.EXISTS), Not(P("winlog.event_data.ParentUser", Op.EXISTS))))

    def test_null(self, tmp_path: Path) -> None:
        """A null value means the field is absent."""
        assert _sel(tmp_path, "    ParentUser: null\n") == Not(P("winlog.event_data.ParentUser", Op.EXISTS))

    def test_numbers_and_bools(self, tmp_path: Path) -> None:
        """Numbers and booleans are EQ with typed values."""
        q = _sel(tmp_path, "    DestinationPort: [4444, 1337]\n    Initiated: true\n")
        assert q == AllOf((P("destination.port", Op.EQ, 4444, 1337), P("Initiated", Op.EQ, True)))

    def test_numeric_compare(self, tmp_path: Path) -> None:
        """gt / lte become the numeric compare ops."""
        q = _sel(tmp_path, "    ProcessId|gt: 100\n    ParentProcessId|lte: 5\n")
        assert q == AllOf((P("process.pid", Op.GT, 100), P("process.parent.pid", Op.LE, 5)))

    def test_fieldref(self, tmp_path: Path) -> None:
        """fieldref names the other field by its ECS name."""
        q = _sel(tmp_path, "    User|fieldref: ParentUser\n")
        assert q == P("winlog.event_data.User", Op.FIELDREF, "winlog.event_data.ParentUser", cased=True)

    def test_wildcards(self, tmp_path: Path) -> None:
        """`*` and `?` inside a value make a WILDCARD; an escaped `\\*` and a plain `\\` are backslash-escaped."""
        q = _sel(tmp_path, "    Image: '/usr/bin/?ython*'\n    CommandLine|contains: 'a\\*b*c\\d'\n")
        assert q == AllOf((P("process.executable", Op.WILDCARD, "/usr/bin/?ython*"),
                           P("process.command_line", Op.WILDCARD, "*a\\*b*c\\\\d*")))

    def test_escaped_wildcard_alone_is_literal(self, tmp_path: Path) -> None:
        """A value whose only `*` is escaped stays a literal EQ (EQ values carry no escapes)."""
        assert _sel(tmp_path, "    CommandLine: 'echo \\*'\n") == P("process.command_line", Op.EQ, "echo *")

    def test_cased(self, tmp_path: Path) -> None:
        """|cased makes the match case-sensitive."""
        q = _sel(tmp_path, "    CommandLine|cased|contains: 'ABC'\n")
        assert q == P("process.command_line", Op.CONTAINS, "ABC", cased=True)

    def test_unmapped_field_keeps_its_name(self, tmp_path: Path) -> None:
        """A field not in SIGMA_FIELDS is used as written."""
        assert _sel(tmp_path, "    SomeField: x\n") == P("SomeField", Op.EQ, "x")


class TestConditions:
    DET = ("  sel_a:\n    Image|endswith: '/nc'\n  sel_b:\n    Image|endswith: '/ncat'\n"
           "  filter:\n    User: root\n")

    def test_one_of_pattern_and_not(self, tmp_path: Path) -> None:
        """`1 of sel_* and not filter` ORs the selections (merged into one predicate) and negates the filter."""
        q = _query(tmp_path, self.DET + "  condition: 1 of sel_* and not filter\n")
        assert q == AllOf((P("process.executable", Op.ENDSWITH, "/nc", "/ncat"),
                           Not(P("winlog.event_data.User", Op.EQ, "root"))))

    def test_all_of_them(self, tmp_path: Path) -> None:
        """`all of them` ANDs every detection."""
        q = _query(tmp_path, self.DET + "  condition: all of them\n")
        assert isinstance(q, AllOf) and len(q.terms) == 3

    def test_parentheses_and_or(self, tmp_path: Path) -> None:
        """Parentheses group as written."""
        q = _query(tmp_path, self.DET + "  condition: (sel_a or filter) and not sel_b\n")
        assert isinstance(q, AllOf) and isinstance(q.terms[0], AnyOf) and isinstance(q.terms[1], Not)

    def test_list_of_mappings_is_or(self, tmp_path: Path) -> None:
        """A detection that is a list of mappings ORs them."""
        q = _query(tmp_path, "  sel:\n    - Image: a\n    - CommandLine: b\n  condition: sel\n")
        assert q == AnyOf((P("process.executable", Op.EQ, "a"), P("process.command_line", Op.EQ, "b")))

    def test_condition_list_is_or(self, tmp_path: Path) -> None:
        """Several conditions of one rule are alternatives."""
        q = _query(tmp_path, self.DET + "  condition:\n    - sel_a\n    - filter\n")
        assert isinstance(q, AnyOf) and len(q.terms) == 2


class TestMetadata:
    def test_levels(self, tmp_path: Path) -> None:
        """Each Sigma level maps to its severity label and risk score."""
        expected = {"informational": ("low", 10), "low": ("low", 21), "medium": ("medium", 47),
                    "high": ("high", 73), "critical": ("critical", 99)}
        for level, (severity, risk) in expected.items():
            rules, _, _ = _load(tmp_path, HEADER + f"level: {level}\n" + BODY)
            assert (rules[0].level, rules[0].severity, rules[0].risk_score) == (level, severity, risk)

    def test_tags(self, tmp_path: Path) -> None:
        """Techniques and known tactics get ids (hyphen or underscore) and names from the ATT&CK table;
        a sub-technique comes with its parent; unknown tactics keep their name."""
        tags = ("tags: [attack.t1059.004, attack.privilege-escalation, attack.command_and_control, "
                "attack.stealth, attack.g0032, cve.2021-1]\n")
        rules, _, _ = _load(tmp_path, HEADER + tags + BODY)
        assert [(t.tactic_id, t.tactic_name, t.technique_id, t.subtechnique_id, t.subtechnique_name)
                for t in rules[0].threats] == [
            (None, None, "T1059", "T1059.004", "Unix Shell"),
            ("TA0004", "Privilege Escalation", None, None, None),
            ("TA0011", "Command and Control", None, None, None),
            (None, "Stealth", None, None, None)]
        assert rules[0].threats[0].technique_name == "Command and Scripting Interpreter"
        assert rules[0].threats[3] == Threat(tactic_name="Stealth")

    def test_rule_lines_in_multi_document_file(self, tmp_path: Path) -> None:
        """Each rule of a multi-document file carries the line where its document starts."""
        text = "# comment\n" + HEADER + BODY + "---\n" + HEADER.replace(RID, RID2) + BODY
        rules, diags, _ = _load(tmp_path, text)
        assert not diags and [r.location.line for r in rules] == [2, 10]

    def test_action_global(self, tmp_path: Path) -> None:
        """An `action: global` document is merged into the rules after it."""
        text = ("action: global\ntitle: shared\nlogsource: {product: linux}\nlevel: low\n---\n"
                f"id: {RID}\n" + BODY)
        rules, diags, _ = _load(tmp_path, text)
        assert not diags and [(r.name, r.level, r.location.line) for r in rules] == [("shared", "low", 6)]


class TestDiagnostics:
    def test_malformed_yaml(self, tmp_path: Path) -> None:
        """Unparseable YAML is one PARSE diagnostic with the path and the line of the problem."""
        rules, diags, f = _load(tmp_path, "title: t\ndetection:\n  sel: [unclosed\n")
        assert rules == [] and len(diags) == 1
        (d,) = diags
        assert (d.code, d.severity, d.location.path) == (Code.PARSE, "error", str(f)) and d.location.line >= 3

    def test_unknown_modifier(self, tmp_path: Path) -> None:
        """An unknown modifier names the file, the rule id, the key and its line; the rule is skipped."""
        rules, diags, f = _load(tmp_path, HEADER + "detection:\n  sel:\n    Image|bogusmod: x\n  condition: sel\n")
        assert rules == [] and len(diags) == 1
        (d,) = diags
        assert (d.code, d.severity, d.rule_id, d.construct) == (Code.PARSE, "error", RID, "Image|bogusmod")
        assert (d.location.path, d.location.line) == (str(f), 6) and "bogusmod" in d.message

    def test_unsupported_value_names_the_key(self, tmp_path: Path) -> None:
        """A placeholder (`expand`) is reported on its detection key."""
        rules, diags = _det(tmp_path, "  sel:\n    Image|expand: '%dirs%'\n  condition: sel\n")
        assert rules == [] and diags[0].code is Code.UNSUPPORTED_CONSTRUCT
        assert (diags[0].construct, diags[0].location.line) == ("Image|expand", 6)

    def test_bad_condition(self, tmp_path: Path) -> None:
        """A condition naming an unknown detection is a PARSE diagnostic on the condition line."""
        rules, diags = _det(tmp_path, "  sel:\n    Image: x\n  condition: sel and other\n")
        assert rules == [] and (diags[0].code, diags[0].rule_id) == (Code.PARSE, RID)
        assert (diags[0].construct, diags[0].location.line) == ("sel and other", 7)

    def test_condition_pipe(self, tmp_path: Path) -> None:
        """The deprecated aggregation pipe is reported with the condition text."""
        rules, diags = _det(tmp_path, "  sel:\n    Image: x\n  condition: sel | count() > 5\n")
        assert rules == [] and diags[0].construct == "sel | count() > 5"

    def test_one_bad_rule_does_not_hide_another(self, tmp_path: Path) -> None:
        """In a multi-document file the good rule loads and the bad one is reported."""
        bad = HEADER + "detection:\n  sel:\n    Image|nope: x\n  condition: sel\n"
        rules, diags, _ = _load(tmp_path, bad + "---\n" + HEADER.replace(RID, RID2) + BODY)
        assert [r.id for r in rules] == [RID2] and [d.rule_id for d in diags] == [RID]

    def test_duplicate_key(self, tmp_path: Path) -> None:
        """A duplicate key is an error (YAML would silently keep the last one)."""
        rules, diags = _det(tmp_path, "  sel:\n    Image: a\n    Image: b\n  condition: sel\n")
        assert rules == [] and (diags[0].code, diags[0].location.line) == (Code.PARSE, 7)

    def test_missing_id(self, tmp_path: Path) -> None:
        """A rule without an id is a SCHEMA diagnostic (alerts need the id)."""
        rules, diags, _ = _load(tmp_path, "title: t\nlogsource: {product: linux}\n" + BODY)
        assert rules == [] and diags[0].code is Code.SCHEMA

    def test_correlation_rule(self, tmp_path: Path) -> None:
        """A correlation loads as a rule whose query is the correlation, its references as written
        (resolved at compile: tests/test_sigma_meta.py); its range condition keeps both bounds."""
        text = (f"title: c\nid: {RID}\ncorrelation:\n  type: event_count\n"
                "  rules: [x]\n  group-by: [User]\n  timespan: 5m\n  condition: {gt: 2, lte: 9}\n")
        rules, diags, _ = _load(tmp_path, text)
        assert diags == [] and rules[0].group == "correlation"
        assert rules[0].query == Correlation(type="event_count", rules=("x",), group_by=("winlog.event_data.User",),
                                             timespan=300.0, condition=(("gt", 2.0), ("lte", 9.0)))


class TestKeywords:
    """Field-less values search the event's text: `message` (the raw line of text inputs) and the
    command line (the text of a process record), as a case-insensitive substring."""

    def test_keyword_translation(self, tmp_path: Path) -> None:
        q = _query(tmp_path, "  keywords:\n    - 'evil'\n    - 'b*d'\n  condition: keywords\n")
        assert q == AnyOf((P("message", Op.CONTAINS, "evil"), P("process.command_line", Op.CONTAINS, "evil"),
                           P("message", Op.WILDCARD, "*b*d*"), P("process.command_line", Op.WILDCARD, "*b*d*")))

    def test_keywords_all_and_cased(self, tmp_path: Path) -> None:
        q = _query(tmp_path, "  keywords:\n    '|all':\n      - grep\n      - password\n"
                             "  kw2:\n    '|cased':\n      - Ab\n  condition: keywords and kw2\n")
        text = ("message", "process.command_line")
        assert q == AllOf((AnyOf(tuple(P(f, Op.CONTAINS, "grep") for f in text)),
                           AnyOf(tuple(P(f, Op.CONTAINS, "password") for f in text)),
                           AnyOf(tuple(P(f, Op.CONTAINS, "Ab", cased=True) for f in text))))

    def test_keywords_fire_on_command_line_and_message(self, tmp_path: Path) -> None:
        """Through the compiled matcher: an auditd-style rule with `|all` keywords."""
        from shellsieve.cli import build
        from tests.conftest import rule_ids, run_events

        f = tmp_path / "rule.yml"
        f.write_text(HEADER + "detection:\n  sel:\n    type: EXECVE\n  keywords:\n    '|all':\n"
                     "      - grep\n      - password\n  condition: sel and keywords\n")
        _, ruleset, diags = build([f])
        assert not [d for d in diags if d.severity == "error"]
        events = [
            {"auditd": {"message_type": "EXECVE"}, "process": {"command_line": "GREP -r PassWord /etc"}},
            {"auditd": {"message_type": "EXECVE"}, "message": "a0=\"grep\" a1=\"password\""},
            {"auditd": {"message_type": "EXECVE"}, "process": {"command_line": "grep -r secret /etc"}},
            {"auditd": {"message_type": "SYSCALL"}, "process": {"command_line": "grep password"}},
        ]
        assert [bool(rule_ids(d)) for d in run_events(ruleset, events)] == [True, True, False, False]


class TestSharedCorpus:
    def test_coverage(self) -> None:
        """At least 97% of process_creation rules, and of those plus auditd, load; auditd skips are keywords."""
        if not SIGMA.is_dir():
            pytest.skip(f"{SIGMA} is absent: the shared Sigma rulesets are not checked out next to the repo")
        loaded: Counter[str] = Counter()
        skipped: Counter[str] = Counter()
        auditd_reasons: set[str] = set()
        for f in sorted(SIGMA.rglob("*.yml")):
            group = next((g for g in ("process_creation", "auditd") if g in f.parts), None)
            if group is None:
                continue
            rules, diags = load_sigma(f)
            errors = [d for d in diags if d.severity == "error"]
            loaded[group] += len(rules)
            skipped[group] += len(errors)
            if group == "auditd":
                auditd_reasons |= {d.message for d in errors}
        for group in ("process_creation", "auditd"):
            assert loaded[group] / (loaded[group] + skipped[group]) >= 0.97, (group, loaded, skipped)
        assert loaded["auditd"] == 53, auditd_reasons  # keyword detections included
