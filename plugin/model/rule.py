"""Rule, Sequence and Threat: what every loader produces and every compiler consumes."""

from __future__ import annotations

import datetime

import msgspec

from shellsieve.diagnostics import Location
from shellsieve.model.correlation import Correlation, Filter
from shellsieve.model.expr import Expr

__all__ = ["Threat", "Step", "Sequence", "Related", "Revision", "Rule"]


class Threat(msgspec.Struct, frozen=True):
    """One MITRE ATT&CK mapping: a tactic and/or a technique and/or one of its sub-techniques (ids as
    the source gives them; names and references from the source or, where it gives none, from the
    ATT&CK table at load time). A sub-technique (T1059.004) always comes with its parent technique."""

    tactic_id: str | None = None
    tactic_name: str | None = None
    technique_id: str | None = None
    technique_name: str | None = None
    subtechnique_id: str | None = None
    subtechnique_name: str | None = None
    tactic_reference: str | None = None
    technique_reference: str | None = None
    subtechnique_reference: str | None = None


class Step(msgspec.Struct, frozen=True):
    """One bracketed query of a sequence; `by` are this step's join fields (sequence-level ones included)."""

    query: Expr
    by: tuple[str, ...] = ()


class Sequence(msgspec.Struct, frozen=True):
    """Ordered steps joined on `by` values, all within `maxspan` seconds of the first (None: unbounded)."""

    steps: tuple[Step, ...]
    maxspan: float | None = None
    until: Step | None = None


class Related(msgspec.Struct, frozen=True):
    """Another rule this one names, as Sigma's `related` does: `derived` (changed from it), `obsolete` ..."""

    id: str
    type: str


class Revision(msgspec.Struct, frozen=True):
    """Which version of its id a rule is: what decides between two loaded copies of one id."""

    version: int | None = None  # Elastic [rule] version (exported and packaged rules carry it)
    modified: datetime.date | None = None  # Elastic [metadata] updated_date, Sigma `modified`
    created: datetime.date | None = None  # Elastic [metadata] creation_date, Sigma `date`
    related: tuple[Related, ...] = ()  # Sigma `related`; Elastic [[metadata.related]] (a shellsieve field)


class Rule(msgspec.Struct, frozen=True):
    """A detection rule in the one intermediate form."""

    id: str
    name: str
    ruleset: str  # source format: "wazuh", "elastic", "sigma"
    query: Expr | Sequence | Correlation | Filter  # the last two: Sigma meta rules (model/correlation.py)
    location: Location
    severity: str = "medium"  # low / medium / high / critical
    risk_score: int = 47
    level: str | None = None  # the source's own level text (Wazuh level, Sigma level)
    threats: tuple[Threat, ...] = ()
    references: tuple[str, ...] = ()
    description: str = ""
    language: str = ""  # wazuh-pcre2, eql, kuery, sigma
    group: str = ""  # what coverage is counted by: "eql", "kuery", "windows/process_creation" ...
    tags: tuple[str, ...] = ()  # lower-case: Sigma `attack.t1059`, Elastic `Tactic: Execution`
    status: str = ""  # Sigma status (stable, test, experimental, deprecated, unsupported), Elastic maturity
    revision: Revision = Revision()
    # ECS rule.* metadata: uuid (Sigma id, Elastic rule_id), version (Elastic version, else the last
    # change date), authors, license, category (Sigma logsource category, Elastic type, Wazuh groups)
    uuid: str = ""
    version: str = ""
    author: tuple[str, ...] = ()
    license: str = ""
    category: str = ""
    ref_name: str = ""  # Sigma `name`: what a correlation or filter may refer to the rule by

    @property
    def is_sequence(self) -> bool:
        return isinstance(self.query, Sequence)

    @property
    def is_meta(self) -> bool:
        """A Sigma correlation or filter: run on other rules' hits, not on events."""
        return isinstance(self.query, (Correlation, Filter))
