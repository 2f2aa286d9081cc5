"""MITRE ATT&CK ids -> names and references, kept as data (shellsieve/data/attack.json).

The table is built by hand from MITRE's STIX bundle (`shellsieve.rules.attack_build`), committed,
and never fetched at run time. Loaders use it at load time to name ids a rule gives without names
(Sigma tags, Wazuh <mitre>) and to give tactic tags (`attack.defense-evasion`) their ids."""

from __future__ import annotations

import functools
import importlib.resources

import msgspec

from shellsieve.model.rule import Threat

__all__ = ["Entry", "Table", "complete", "current", "from_id", "lookup", "shortname", "tactic"]

DATA = "attack.json"
_MAX_HOPS = 8  # redirect chains are one or two hops; the bound only guards against a cycle in the data


class Entry(msgspec.Struct, frozen=True):
    """One tactic, technique or sub-technique: its name and its attack.mitre.org page."""

    name: str
    reference: str = ""


class Table(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The table file: where it came from, every id's entry, tactic ids by shortname, and old ids
    (revoked or renamed in ATT&CK) with the id that replaced them."""

    source: str
    version: str
    ids: dict[str, Entry]
    tactics: dict[str, str] = {}
    redirects: dict[str, str] = {}


def shortname(name: str) -> str:
    """A tactic tag in ATT&CK's shortname spelling: `Defense_Evasion` -> `defense-evasion`."""
    return "-".join(name.strip().lower().replace("_", " ").replace("-", " ").split())


@functools.cache
def _table() -> Table:
    raw = importlib.resources.files("shellsieve.data").joinpath(DATA).read_bytes()
    return msgspec.json.decode(raw, type=Table)


def current(ident: str, table: Table | None = None) -> str:
    """`ident` upper-cased, or, when the table does not have it but ATT&CK replaced it, its successor."""
    t = table or _table()
    ident = ident.strip().upper()
    for _ in range(_MAX_HOPS):
        if ident in t.ids or ident not in t.redirects:
            break
        ident = t.redirects[ident]
    return ident


def lookup(ident: str | None, table: Table | None = None) -> Entry | None:
    """The table's entry for an ATT&CK id (any case, old ids followed to their successor), or None."""
    t = table or _table()
    return t.ids.get(current(ident, t)) if ident else None


def tactic(name: str) -> str | None:
    """The id of a tactic by shortname, in any of the spellings rules use (`command_and_control`)."""
    return _table().tactics.get(shortname(name))


def _named(ident: str | None, name: str | None, reference: str | None) -> tuple[str | None, str | None]:
    entry = lookup(ident)
    if entry is None:
        return name, reference
    return name or entry.name, reference or entry.reference or None


def complete(t: Threat) -> Threat:
    """`t` with an old id replaced by its successor, a sub-technique id moved from technique to
    subtechnique (its parent as technique), and every id the source left without a name or
    reference named from the table."""
    tech_id, tech_name, sub_id, sub_name = t.technique_id, t.technique_name, t.subtechnique_id, t.subtechnique_name
    tech_ref, sub_ref = t.technique_reference, t.subtechnique_reference
    if tech_id and (new := current(tech_id)) != tech_id.strip().upper():
        # the source's name and page describe the old id; take the successor's from the table
        tech_id, tech_name, tech_ref = new, None, None
    if sub_id and (new := current(sub_id)) != sub_id.strip().upper():
        sub_id, sub_name, sub_ref = new, None, None
        if "." not in sub_id:  # a sub-technique merged into a technique: that is now the technique
            tech_id, tech_name, tech_ref, sub_id = sub_id, None, None, None
    if tech_id and "." in tech_id and not sub_id:
        sub_id, sub_name, sub_ref = tech_id.upper(), tech_name, tech_ref
        tech_id, tech_name, tech_ref = tech_id.split(".", 1)[0].upper(), None, None
    elif sub_id and (not tech_id or not sub_id.upper().startswith(tech_id.upper() + ".")):
        if tech_id and tech_id.upper() != sub_id.split(".", 1)[0].upper():
            tech_name, tech_ref = None, None
        tech_id = sub_id.split(".", 1)[0].upper()
    tactic_name, tactic_ref = _named(t.tactic_id, t.tactic_name, t.tactic_reference)
    tech_name, tech_ref = _named(tech_id, tech_name, tech_ref)
    sub_name, sub_ref = _named(sub_id, sub_name, sub_ref)
    return Threat(t.tactic_id, tactic_name, tech_id, tech_name, sub_id, sub_name, tactic_ref, tech_ref, sub_ref)


def from_id(ident: str) -> Threat:
    """The named Threat of a bare ATT&CK id, as Sigma tags and Wazuh <mitre><id> give them: a tactic
    (TA0002), a technique (T1059) or a sub-technique (T1059.004)."""
    ident = ident.strip().upper()
    return complete(Threat(tactic_id=ident) if ident.startswith("TA") else Threat(technique_id=ident))
