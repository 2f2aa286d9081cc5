"""Build the ATT&CK table (shellsieve/data/attack.json) by hand, and report ids it cannot name.

    python -m shellsieve.rules.attack_build --stix attack-v19.1.json.gz \\
        [--redirects attack-technique-redirects.json] [--version-map attack_v18_to_v19.yaml] \\
        [--out PATH] [--report DIR ...]

`--stix` is MITRE's Enterprise STIX bundle (Elastic's detection-rules ships it as
detection_rules/etc/attack-v*.json.gz): techniques and sub-techniques from attack-pattern objects,
tactics and their shortnames from x-mitre-tactic objects; revoked and deprecated objects are left
out. The others only add what the bundle lacks: detection-rules' map of old technique ids to their
successors and its version maps (ids of the next ATT&CK version with their names). The
`[[rule.threat]]` blocks of Elastic's rules, the table's first source, add no id the bundle lacks."""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import re
import sys
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import yaml

from shellsieve.rules.attack import DATA, Entry, Table, current, shortname

__all__ = ["combine", "from_stix", "from_version_map", "main", "read_redirects", "rule_ids", "unnamed"]

_ID = re.compile(r"^(?:TA\d{4}|T\d{4}(?:\.\d{3})?)$")
_SIGMA_TAG = re.compile(r"^\s*-\s*['\"]?attack\.([a-z0-9_.-]+)['\"]?\s*$", re.IGNORECASE | re.MULTILINE)
_WAZUH_ID = re.compile(r"<mitre>(.*?)</mitre>", re.DOTALL)


def _read_json(path: Path) -> Any:
    raw = path.read_bytes()
    return json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)


def _mitre_ref(obj: dict[str, Any]) -> dict[str, Any] | None:
    for ref in obj.get("external_references") or ():
        if isinstance(ref, dict) and ref.get("source_name") == "mitre-attack" and ref.get("external_id"):
            return ref
    return None


def _objects(path: Path) -> list[Any]:
    """The objects of one bundle file, or of every bundle file in a directory (mitre/cti's
    enterprise-attack/ holds one small bundle per object)."""
    files = sorted(path.rglob("*.json")) if path.is_dir() else [path]
    objects: list[Any] = []
    for file in files:
        bundle = _read_json(file)
        more = bundle.get("objects") if isinstance(bundle, dict) else None
        if not isinstance(more, list):
            raise ValueError(f"{file}: not a STIX bundle (no objects list)")
        objects.extend(more)
    return objects


def from_stix(path: Path, source: str = "", version: str = "") -> Table:
    """Every current tactic, technique and sub-technique of a STIX bundle (plain or gzipped JSON, or
    a directory of them); `version` when the bundle has no x-mitre-collection object to say it."""
    objects = _objects(path)
    ids: dict[str, Entry] = {}
    tactics: dict[str, str] = {}
    for obj in objects:
        if not isinstance(obj, dict):
            continue
        if obj.get("type") == "x-mitre-collection" and not version:
            version = str(obj.get("x_mitre_version", ""))
        if obj.get("type") not in ("attack-pattern", "x-mitre-tactic"):
            continue
        if obj.get("revoked") or obj.get("x_mitre_deprecated"):
            continue
        ref = _mitre_ref(obj)
        if ref is None or not obj.get("name"):
            continue  # another framework's object (CAPEC) or a malformed one
        ident = str(ref["external_id"]).strip().upper()
        url = str(ref.get("url", "")).strip()
        ids[ident] = Entry(str(obj["name"]).strip(), url + "/" if url and not url.endswith("/") else url)
        if obj["type"] == "x-mitre-tactic" and obj.get("x_mitre_shortname"):
            tactics[shortname(str(obj["x_mitre_shortname"]))] = ident
    if not ids:
        raise ValueError(f"{path}: no ATT&CK attack-pattern or x-mitre-tactic objects")
    return Table(source or f"MITRE ATT&CK Enterprise STIX bundle {path.name}", version,
                 dict(sorted(ids.items())), dict(sorted(tactics.items())))


def _threat_nodes(doc: Any) -> Iterator[Any]:
    threats = doc.get("rule", {}).get("threat", []) if isinstance(doc, dict) else []
    for block in threats if isinstance(threats, list) else []:
        if not isinstance(block, dict):
            continue
        yield block.get("tactic")
        for tech in block.get("technique", []) or []:
            yield tech
            yield from (tech.get("subtechnique", []) or []) if isinstance(tech, dict) else []


def _toml(path: Path) -> Any:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None  # not a rule file the table can learn from; the loader reports it elsewhere


def read_redirects(path: Path) -> dict[str, str]:
    """detection-rules' attack-technique-redirects.json: {"mapping": {old id: new id}}."""
    mapping = _read_json(path).get("mapping")
    if not isinstance(mapping, dict):
        raise ValueError(f"{path}: no \"mapping\" object")
    return {str(k).strip().upper(): str(v).strip().upper() for k, v in mapping.items() if v}


def from_version_map(path: Path) -> tuple[dict[str, Entry], dict[str, str]]:
    """detection-rules' ATT&CK version map (attack_vN_to_vM.yaml): the new ids with their names, and
    the old ids they replace."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: not a version map")
    ids: dict[str, Entry] = {}
    redirects: dict[str, str] = {}
    for section in ("tactics", "techniques", "subtechniques"):
        for old, new in (doc.get(section) or {}).items():
            if isinstance(new, dict) and new.get("id") and new.get("name"):
                ident = str(new["id"]).strip().upper()
                ids.setdefault(ident, Entry(str(new["name"]).strip(), str(new.get("reference", "")).strip()))
                redirects[str(old).strip().upper()] = str(new["id"]).strip().upper()
    return ids, redirects


def combine(stix: Table, extra: Iterable[dict[str, Entry]], redirects: dict[str, str], note: str) -> Table:
    """The bundle's table with ids only the other sources have added, and the redirects whose old id
    the table lacks (an id the bundle still has keeps its own name)."""
    ids = dict(stix.ids)
    for more in extra:
        for ident, entry in more.items():
            ids.setdefault(ident, entry)
    kept = {old: new for old, new in sorted(redirects.items()) if old not in ids}
    return Table(stix.source + note, stix.version, dict(sorted(ids.items())), stix.tactics, kept)


def rule_ids(root: Path) -> Iterator[tuple[str, Path]]:
    """Every ATT&CK id or tactic tag the rules under `root` give: Sigma `attack.*` tags (groups and
    software left out), Elastic threat blocks, Wazuh <mitre><id>."""
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        suffix = path.suffix.lower()
        if suffix in (".yml", ".yaml"):
            text = path.read_text(encoding="utf-8", errors="replace")
            for tag in _SIGMA_TAG.findall(text):
                tag = tag.rstrip(".")
                if tag[:1].lower() in ("g", "s") and tag[1:2].isdigit():
                    continue
                yield (tag.upper() if tag[1:2].isdigit() else shortname(tag)), path
        elif suffix == ".toml":
            for node in _threat_nodes(_toml(path)):
                if isinstance(node, dict) and node.get("id"):
                    yield str(node["id"]).strip().upper(), path
        elif suffix == ".xml":
            text = path.read_text(encoding="utf-8", errors="replace")
            for block in _WAZUH_ID.findall(text):
                yield from ((i.strip().upper(), path) for i in re.findall(r"<id>(.*?)</id>", block))


def unnamed(table: Table, roots: Iterable[Path]) -> collections.Counter[str]:
    """Ids and tactic tags the rules under `roots` use that the table cannot name, with how many times."""
    missing: collections.Counter[str] = collections.Counter()
    for root in roots:
        for ident, _ in rule_ids(root):
            known = current(ident, table) in table.ids if _ID.match(ident) else ident in table.tactics
            if not known:
                missing[ident] += 1
    return missing


def _report(table: Table, roots: list[Path]) -> None:
    for root in roots:
        used = collections.Counter(i for i, _ in rule_ids(root))
        missing = unnamed(table, [root])
        print(f"{root}: {len(used)} distinct ids/tactics used, {len(missing)} not named "
              f"({sum(missing.values())} uses)")
        for ident, n in sorted(missing.items()):
            print(f"  {ident} x{n}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shellsieve.rules.attack_build",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--stix", type=Path, metavar="FILE.json[.gz]",
                        help="MITRE's Enterprise ATT&CK STIX bundle (or mitre/cti's enterprise-attack/ directory)")
    parser.add_argument("--attack-version", default="", metavar="N",
                        help="the ATT&CK version, when the bundle has no x-mitre-collection object")
    parser.add_argument("--source", default="", metavar="TEXT",
                        help="where the bundle came from, recorded in the table (default: its file name)")
    parser.add_argument("--redirects", type=Path, metavar="FILE",
                        help="detection-rules etc/attack-technique-redirects.json (old technique ids -> new)")
    parser.add_argument("--version-map", type=Path, action="append", default=[], metavar="FILE",
                        help="detection-rules etc/attack-version-maps/*.yaml (ids of a newer ATT&CK, named)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent.parent / "data" / DATA,
                        help="where to write the table (default: the package's own)")
    parser.add_argument("--report", type=Path, nargs="+", default=[], metavar="RULE_DIR",
                        help="list the ids the rules under these directories use that the table cannot name; "
                             "without --stix, the table at --out is read")
    args = parser.parse_args(argv)
    if args.stix is not None and not args.stix.exists():
        parser.error(f"--stix {args.stix}: no such file or directory")
    for opt, path in [("--redirects", args.redirects),
                      *(("--version-map", p) for p in args.version_map)]:
        if path is not None and not path.is_file():
            parser.error(f"{opt} {path}: not a file")
    for path in args.report:
        if not path.is_dir():
            parser.error(f"--report {path}: not a directory")
    if args.stix is None and not args.report:
        parser.error("give --stix FILE to build the table, or --report DIR to check the one at --out")
    try:
        if args.stix is not None:
            redirects = read_redirects(args.redirects) if args.redirects else {}
            extra = []
            for vmap in args.version_map:
                ids, more = from_version_map(vmap)
                extra.append(ids)
                redirects.update(more)
            note = "".join(f"; {p.name}" for p in [*([args.redirects] if args.redirects else []), *args.version_map])
            table = combine(from_stix(args.stix, args.source, args.attack_version), extra, redirects, note)
            args.out.write_bytes(msgspec.json.format(msgspec.json.encode(table), indent=1) + b"\n")
            print(f"{args.out}: ATT&CK {table.version or '?'}, {len(table.ids)} ids, {len(table.tactics)} tactics, "
                  f"{len(table.redirects)} redirects", file=sys.stderr)
        else:
            table = msgspec.json.decode(args.out.read_bytes(), type=Table)
    except (OSError, ValueError, yaml.YAMLError, msgspec.DecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _report(table, args.report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
