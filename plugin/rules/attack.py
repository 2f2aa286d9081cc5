"""MITRE ATT&CK ids -> names and references, kept as data (shellsieve/data/attack.json).

The table is built from a maintained source, the `[[rule.threat]]` blocks of Elastic's
detection-rules collection, never fetched at run time:

    python -m shellsieve.rules.attack --build /work/shared/rulesets/elastic [--out PATH]

Loaders use it at load time to name ids a rule gives without names (Sigma tags, Wazuh <mitre>)."""

from __future__ import annotations

import argparse
import functools
import importlib.resources
import sys
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from shellsieve.model.rule import Threat

__all__ = ["Entry", "build", "complete", "lookup", "main"]

_DATA = "attack.json"


class Entry(msgspec.Struct, frozen=True):
    """One tactic, technique or sub-technique: its name and its attack.mitre.org page."""

    name: str
    reference: str = ""


def _add(table: dict[str, Entry], node: Any) -> None:
    if not isinstance(node, dict) or not node.get("id") or not node.get("name"):
        return
    ident = str(node["id"]).strip().upper()
    # the first spelling wins; a later file's differing name does not flip-flop the table
    table.setdefault(ident, Entry(str(node["name"]).strip(), str(node.get("reference", "")).strip()))


def build(root: Path) -> dict[str, Entry]:
    """Every tactic, technique and sub-technique named in the TOML rules under `root`, by id."""
    table: dict[str, Entry] = {}
    for path in sorted(root.rglob("*.toml")):
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            continue  # not a rule file the table can learn from; the loader reports it elsewhere
        threats = doc.get("rule", {}).get("threat", [])
        for block in threats if isinstance(threats, list) else []:
            if not isinstance(block, dict):
                continue
            _add(table, block.get("tactic"))
            for tech in block.get("technique", []) or []:
                _add(table, tech)
                for sub in (tech.get("subtechnique", []) or []) if isinstance(tech, dict) else []:
                    _add(table, sub)
    return dict(sorted(table.items()))


@functools.cache
def _table() -> dict[str, Entry]:
    raw = importlib.resources.files("shellsieve.data").joinpath(_DATA).read_bytes()
    return msgspec.json.decode(raw, type=dict[str, Entry])


def lookup(ident: str | None) -> Entry | None:
    """The table's entry for an ATT&CK id (any case), or None."""
    return _table().get(ident.strip().upper()) if ident else None


def _named(ident: str | None, name: str | None, reference: str | None) -> tuple[str | None, str | None]:
    entry = lookup(ident)
    if entry is None:
        return name, reference
    return name or entry.name, reference or entry.reference or None


def complete(t: Threat) -> Threat:
    """`t` with a sub-technique id moved from technique to subtechnique (its parent as technique),
    and every id the source left without a name or reference named from the table."""
    tech_id, tech_name, sub_id, sub_name = t.technique_id, t.technique_name, t.subtechnique_id, t.subtechnique_name
    if tech_id and "." in tech_id and not sub_id:
        sub_id, sub_name = tech_id.upper(), tech_name
        tech_id, tech_name = tech_id.split(".", 1)[0].upper(), None
    elif sub_id and not tech_id:
        tech_id = sub_id.split(".", 1)[0].upper()
    tactic_name, tactic_ref = _named(t.tactic_id, t.tactic_name, t.tactic_reference)
    tech_name, tech_ref = _named(tech_id, tech_name, t.technique_reference)
    sub_name, sub_ref = _named(sub_id, sub_name, t.subtechnique_reference)
    return Threat(t.tactic_id, tactic_name, tech_id, tech_name, sub_id, sub_name, tactic_ref, tech_ref, sub_ref)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shellsieve.rules.attack", description=__doc__.splitlines()[0])
    parser.add_argument("--build", type=Path, required=True, metavar="DIR",
                        help="a detection-rules checkout (its TOML rules are read)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent.parent / "data" / _DATA,
                        help="where to write the table (default: the package's own)")
    args = parser.parse_args(argv)
    if not args.build.is_dir():
        parser.error(f"--build {args.build}: not a directory")
    table = build(args.build)
    if not table:
        print(f"{args.build}: no [[rule.threat]] blocks found", file=sys.stderr)
        return 1
    args.out.write_bytes(msgspec.json.format(msgspec.json.encode(table), indent=1) + b"\n")
    print(f"{args.out}: {len(table)} ids", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
