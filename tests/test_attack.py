"""The ATT&CK table (shellsieve/data/attack.json), its builder, and rule metadata the loaders fill."""

from __future__ import annotations

from pathlib import Path

import pytest

from shellsieve.model.rule import Rule, Threat
from shellsieve.rules import attack
from shellsieve.rules.elastic import load_elastic

PATTERNS = Path(__file__).parent.parent / "patterns"
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


class TestTable:
    def test_names_tactics_techniques_subtechniques(self) -> None:
        """The shipped table names a tactic, a technique and a sub-technique, with their pages."""
        assert attack.lookup("ta0002") == attack.Entry("Execution", "https://attack.mitre.org/tactics/TA0002/")
        assert attack.lookup("T1059").name == "Command and Scripting Interpreter"  # type: ignore[union-attr]
        assert attack.lookup("T1059.004").reference.endswith("/T1059/004/")  # type: ignore[union-attr]
        assert attack.lookup("T9999") is None and attack.lookup(None) is None

    def test_build_reads_threat_blocks(self, tmp_path: Path) -> None:
        """The builder collects every id with its name and reference from [[rule.threat]] blocks."""
        (tmp_path / "a.toml").write_text(ELASTIC_RULE)
        (tmp_path / "broken.toml").write_text("[rule\n")
        table = attack.build(tmp_path)
        assert set(table) == {"TA0002", "T1059", "T1059.004"}
        assert table["T1059.004"] == attack.Entry("Unix Shell", "https://attack.mitre.org/techniques/T1059/004/")

    def test_main_writes_table_and_rejects_a_missing_dir(self, tmp_path: Path) -> None:
        """`--build DIR --out F` writes a table `lookup` could read; a missing DIR is a usage error."""
        (tmp_path / "a.toml").write_text(ELASTIC_RULE)
        out = tmp_path / "attack.json"
        assert attack.main(["--build", str(tmp_path), "--out", str(out)]) == 0
        assert b'"Unix Shell"' in out.read_bytes()
        with pytest.raises(SystemExit) as exc:
            attack.main(["--build", str(tmp_path / "nope"), "--out", str(out)])
        assert exc.value.code == 2

    def test_complete_splits_subtechnique(self) -> None:
        """A sub-technique id given as technique becomes the subtechnique, its parent the technique."""
        t = attack.complete(Threat(technique_id="t1059.004"))
        assert (t.technique_id, t.subtechnique_id, t.subtechnique_name) == ("T1059", "T1059.004", "Unix Shell")
        assert t.technique_reference == "https://attack.mitre.org/techniques/T1059/"
        # a name the source gives is kept; an id the table does not know stays unnamed
        assert attack.complete(Threat(technique_id="T1059", technique_name="Own")).technique_name == "Own"
        assert attack.complete(Threat(technique_id="T9999")) == Threat(technique_id="T9999")


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
