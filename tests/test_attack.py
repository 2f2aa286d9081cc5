"""The ATT&CK table (shellsieve/data/attack.json), its builder (attack_build), and rule metadata the loaders fill."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import msgspec
import pytest

from conftest import PATTERNS, RULESETS, ROOT
from shellsieve.model.rule import Rule, Threat
from shellsieve.rules import attack, attack_build
from shellsieve.rules.discover import load_rules
from shellsieve.rules.elastic import load_elastic
from shellsieve.rules.sigma import load_sigma

PLUGIN = ROOT / "plugin"
ELASTIC_RULE = """\
[metadata]
creation_date = "2024/01/02"
updated_date = "2024/03/04"

[rule]
author = ["Elastic", "Someone"]
description = "d"
language = "eql"
license = "Elastic License v2"
name = "n"
risk_score = 73
rule_id = "11111111-2222-3333-4444-555555555555"
severity = "high"
type = "eql"
query = 'process where process.name == "bash"'

[[rule.threat]]
framework = "MITRE ATT&CK"
[[rule.threat.technique]]
id = "T1059"
name = "Command and Scripting Interpreter"
reference = "https://attack.mitre.org/techniques/T1059/"
[[rule.threat.technique.subtechnique]]
id = "T1059.004"
name = "Unix Shell"
reference = "https://attack.mitre.org/techniques/T1059/004/"

[rule.threat.tactic]
id = "TA0002"
name = "Execution"
reference = "https://attack.mitre.org/tactics/TA0002/"
"""


def _pattern(ident: str, name: str, url: str, kind: str = "attack-pattern", **extra: object) -> dict[str, object]:
    return {"type": kind, "id": f"{kind}--{ident}", "name": name,
            "external_references": [{"source_name": "mitre-attack", "external_id": ident, "url": url}], **extra}


# A tiny Enterprise bundle in the shape of MITRE's: a collection with its version, two tactics of
# ATT&CK v19, techniques, and objects the builder must leave out.
STIX = {"type": "bundle", "id": "bundle--1", "objects": [
    {"type": "x-mitre-collection", "id": "x-mitre-collection--1", "name": "Enterprise ATT&CK",
     "x_mitre_version": "19.1"},
    _pattern("TA0005", "Stealth", "https://attack.mitre.org/tactics/TA0005", "x-mitre-tactic",
             x_mitre_shortname="stealth"),
    _pattern("TA0112", "Defense Impairment", "https://attack.mitre.org/tactics/TA0112", "x-mitre-tactic",
             x_mitre_shortname="defense-impairment"),
    _pattern("T1059", "Command and Scripting Interpreter", "https://attack.mitre.org/techniques/T1059"),
    _pattern("T1059.001", "PowerShell", "https://attack.mitre.org/techniques/T1059/001"),
    _pattern("T1685", "Disable or Modify Tools", "https://attack.mitre.org/techniques/T1685"),
    _pattern("T1562.001", "Disable or Modify Tools", "https://attack.mitre.org/techniques/T1562/001", revoked=True),
    _pattern("T1064", "Scripting", "https://attack.mitre.org/techniques/T1064", x_mitre_deprecated=True),
    {"type": "attack-pattern", "id": "attack-pattern--capec", "name": "CAPEC only",
     "external_references": [{"source_name": "capec", "external_id": "CAPEC-1"}]},
    {"type": "relationship", "id": "relationship--1"},
]}
SIGMA_RULE = """\
title: t
id: 0b6f0b8c-0000-4000-8000-000000000001
status: test
tags:
{tags}
logsource:
    category: process_creation
    product: linux
detection:
    sel:
        Image|endswith: /bash
    condition: sel
level: high
"""


def _threats(tmp_path: Path, *tags: str) -> tuple[Threat, ...]:
    path = tmp_path / "r.yml"
    path.write_text(SIGMA_RULE.format(tags="\n".join(f"    - {t}" for t in tags)))
    rules, diags = load_sigma(path)
    assert not [d for d in diags if d.severity == "error"]
    return rules[0].threats


class TestTable:
    def test_names_tactics_techniques_subtechniques(self) -> None:
        """The shipped table names a tactic, a technique and a sub-technique, with their pages."""
        assert attack.lookup("ta0002") == attack.Entry("Execution", "https://attack.mitre.org/tactics/TA0002/")
        assert attack.lookup("T1059").name == "Command and Scripting Interpreter"  # type: ignore[union-attr]
        assert attack.lookup("T1059.004").reference.endswith("/T1059/004/")  # type: ignore[union-attr]
        assert attack.lookup("T9999") is None and attack.lookup(None) is None

    def test_says_where_it_came_from(self) -> None:
        """The table file records its source and its ATT&CK version, and is small."""
        raw = (PLUGIN / "data" / attack.DATA).read_bytes()
        table = msgspec.json.decode(raw, type=attack.Table)
        assert "STIX" in table.source and table.version[:1].isdigit()
        assert len(table.ids) > 600 and len(raw) < 300_000

    def test_names_every_id_the_shipped_rules_use(self) -> None:
        """Every ATT&CK id and tactic tag of patterns/ is in the table, and every loaded threat is named."""
        table = msgspec.json.decode((PLUGIN / "data" / attack.DATA).read_bytes(), type=attack.Table)
        assert sorted(attack_build.unnamed(table, [PATTERNS])) == []
        rules, _ = load_rules([PATTERNS])
        threats = [t for r in rules for t in r.threats]
        assert threats
        for t in threats:
            for ident, name in ((t.tactic_id, t.tactic_name), (t.technique_id, t.technique_name),
                                (t.subtechnique_id, t.subtechnique_name)):
                assert name or not ident, (ident, t)

    def test_tactic_shortnames_in_every_spelling(self) -> None:
        """ATT&CK's shortname, Sigma's older underscore form and display case give one tactic id."""
        assert attack.tactic("command-and-control") == attack.tactic("Command_and_Control") == "TA0011"
        assert attack.tactic("defense-evasion") == attack.tactic("defense_evasion") is not None
        assert attack.tactic("no-such-tactic") is None

    def test_complete_splits_subtechnique(self) -> None:
        """A sub-technique id given as technique becomes the subtechnique, its parent the technique."""
        t = attack.complete(Threat(technique_id="t1059.004"))
        assert (t.technique_id, t.subtechnique_id, t.subtechnique_name) == ("T1059", "T1059.004", "Unix Shell")
        assert t.technique_reference == "https://attack.mitre.org/techniques/T1059/"
        # a name the source gives is kept; an id the table does not know stays unnamed
        assert attack.complete(Threat(technique_id="T1059", technique_name="Own")).technique_name == "Own"
        assert attack.complete(Threat(technique_id="T9999")) == Threat(technique_id="T9999")

    def test_complete_follows_a_replaced_id(self) -> None:
        """An id ATT&CK revoked becomes its successor (a sub-technique one split under its parent)."""
        table = msgspec.json.decode((PLUGIN / "data" / attack.DATA).read_bytes(), type=attack.Table)
        old, new = next((o, n) for o, n in table.redirects.items() if "." in n and "." not in o)
        t = attack.complete(Threat(technique_id=old, technique_name="Old name"))
        assert (t.technique_id, t.subtechnique_id) == (new.split(".")[0], new)
        assert t.subtechnique_name == table.ids[new].name and t.technique_name == table.ids[new.split(".")[0]].name


class TestSigmaTags:
    def test_public_rules_name_their_techniques(self, tmp_path: Path) -> None:
        """SigmaHQ rules tagged T1059.001 and T1047 load with names and pages for both."""
        sample = RULESETS / "sigma" / "windows" / "process_creation"
        files = ["proc_creation_win_powershell_reverse_shell_connection.yml",
                 "proc_creation_win_wmic_recon_process.yml"]
        if not all((sample / f).is_file() for f in files):
            pytest.skip(f"{sample} is absent: the shared public rulesets are not checked out next to the repo")
        for f in files:
            shutil.copy(sample / f, tmp_path / f)
        rules, _ = load_rules([tmp_path])
        named = {t.subtechnique_id or t.technique_id: t for r in rules for t in r.threats if t.technique_id}
        assert named["T1059.001"].subtechnique_name == "PowerShell"
        assert named["T1059.001"].technique_name == "Command and Scripting Interpreter"
        assert named["T1047"].technique_name == "Windows Management Instrumentation"
        assert named["T1047"].technique_reference == "https://attack.mitre.org/techniques/T1047/"
        tactics = {t.tactic_id: t.tactic_name for r in rules for t in r.threats if t.tactic_id}
        assert tactics == {"TA0002": "Execution", "TA0007": "Discovery"}

    def test_tactic_tags_by_shortname(self, tmp_path: Path) -> None:
        """Both spellings of a tactic tag give one tactic with the table's id and name."""
        threats = _threats(tmp_path, "attack.command-and-control", "attack.command_and_control",
                           "attack.defense-evasion", "attack.defense_evasion")
        assert len(threats) == 2
        c2 = attack.lookup("TA0011")
        assert c2 is not None and threats[0] == Threat("TA0011", "Command and Control", tactic_reference=c2.reference)
        assert threats[1].tactic_id == attack.tactic("defense-evasion")

    def test_tactic_the_table_lacks_keeps_its_name(self, tmp_path: Path) -> None:
        """A tactic tag the table has no shortname for keeps the rule's name; groups are left out."""
        threats = _threats(tmp_path, "attack.no-such-tactic", "attack.g0032", "attack.s0154")
        assert threats == (Threat(tactic_name="No Such Tactic"),)


class TestBuild:
    @pytest.fixture()
    def sources(self, tmp_path: Path) -> dict[str, Path]:
        stix = tmp_path / "attack-v19.1.json.gz"
        stix.write_bytes(gzip.compress(json.dumps(STIX).encode()))
        redirects = tmp_path / "attack-technique-redirects.json"
        redirects.write_text(json.dumps({"mapping": {"T1086": "T1059.001", "T1059": "T1000"}, "saved_date": "x"}))
        vmap = tmp_path / "attack_v19_to_v20.yaml"
        vmap.write_text("techniques:\n  T1685:\n    id: T1999\n    name: Newer\n"
                        "    reference: https://attack.mitre.org/techniques/T1999/\n  T1064: null\n")
        rules = tmp_path / "rules"
        rules.mkdir()
        (rules / "a.toml").write_text(ELASTIC_RULE)
        (rules / "b.yml").write_text(SIGMA_RULE.format(tags="    - attack.stealth\n    - attack.t1086\n"
                                                            "    - attack.t1234\n    - attack.g0032"))
        return {"stix": stix, "redirects": redirects, "vmap": vmap, "rules": rules}

    def test_reads_a_stix_bundle(self, sources: dict[str, Path]) -> None:
        """Current attack-patterns and tactics with their pages and shortnames; revoked, deprecated
        and other frameworks' objects left out; the collection's version kept."""
        table = attack_build.from_stix(sources["stix"])
        assert set(table.ids) == {"TA0005", "TA0112", "T1059", "T1059.001", "T1685"}
        assert table.ids["T1059.001"] == attack.Entry("PowerShell", "https://attack.mitre.org/techniques/T1059/001/")
        assert table.tactics == {"defense-impairment": "TA0112", "stealth": "TA0005"}
        assert table.version == "19.1" and "attack-v19.1.json.gz" in table.source

    def test_rejects_what_is_not_a_bundle(self, tmp_path: Path) -> None:
        """A JSON file without objects, or without ATT&CK objects, is an error naming the file."""
        (tmp_path / "x.json").write_text("{}")
        with pytest.raises(ValueError, match="x.json: not a STIX bundle"):
            attack_build.from_stix(tmp_path / "x.json")
        (tmp_path / "y.json").write_text(json.dumps({"objects": [STIX["objects"][-1]]}))  # type: ignore[index]
        with pytest.raises(ValueError, match="y.json: no ATT&CK"):
            attack_build.from_stix(tmp_path / "y.json")

    def test_main_writes_table_and_reports(self, sources: dict[str, Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
        """--stix with redirects and a version map writes one table; --report lists what it cannot name."""
        out = tmp_path / "attack.json"
        assert attack_build.main(["--stix", str(sources["stix"]), "--redirects", str(sources["redirects"]),
                                  "--version-map", str(sources["vmap"]), "--out", str(out),
                                  "--report", str(sources["rules"])]) == 0
        table = msgspec.json.decode(out.read_bytes(), type=attack.Table)
        assert table.ids["T1999"].name == "Newer"  # from the version map
        # an old id the bundle lacks is redirected; one the bundle still has keeps its own entry
        assert table.redirects == {"T1086": "T1059.001"}
        assert attack.lookup("t1086", table) == table.ids["T1059.001"]
        report = capsys.readouterr().out
        # the TOML rule's TA0002 and T1059.004 and the Sigma rule's made-up T1234 are not in the tiny bundle
        assert "3 not named" in report and "  T1234 x1" in report and "  TA0002 x1" in report
        assert "  T1059.004 x1" in report
        assert "stealth" not in report and "G0032" not in report

    def test_main_rejects_bad_options(self, sources: dict[str, Path], tmp_path: Path) -> None:
        """A missing file or directory, or no source at all, is a usage error (exit 2)."""
        for argv in (["--stix", str(tmp_path / "nope.json")], ["--report", str(tmp_path / "nope")],
                     ["--stix", str(sources["stix"]), "--redirects", str(tmp_path / "nope")], []):
            with pytest.raises(SystemExit) as exc:
                attack_build.main(argv)
            assert exc.value.code == 2


class TestElasticMetadata:
    @pytest.fixture()
    def rule(self, tmp_path: Path) -> Rule:
        path = tmp_path / "r.toml"
        path.write_text(ELASTIC_RULE)
        rules, diags = load_elastic(path)
        assert diags == []
        return rules[0]

    def test_rule_fields(self, rule: Rule) -> None:
        """rule_id is also the uuid; version falls back to updated_date; authors, license, type kept."""
        assert (rule.id, rule.uuid) == ("11111111-2222-3333-4444-555555555555",) * 2
        assert (rule.version, rule.license, rule.category) == ("2024-03-04", "Elastic License v2", "eql")
        assert rule.author == ("Elastic", "Someone")

    def test_threat_keeps_subtechnique(self, rule: Rule) -> None:
        """One Threat per sub-technique, with the tactic, the parent technique and all references."""
        assert rule.threats == (Threat("TA0002", "Execution", "T1059", "Command and Scripting Interpreter",
                                       "T1059.004", "Unix Shell", "https://attack.mitre.org/tactics/TA0002/",
                                       "https://attack.mitre.org/techniques/T1059/",
                                       "https://attack.mitre.org/techniques/T1059/004/"),)

    def test_shipped_rule_version(self) -> None:
        """A shipped rule with `version = 6` carries it as rule.version "6"."""
        rules, _ = load_elastic(PATTERNS / "elastic" / "reverse_shell_via_suspicious_child_process.toml")
        assert rules[0].version == "6" and rules[0].license == "Elastic License v2"
