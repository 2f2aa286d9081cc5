"""`shellsieve run` and `shellsieve check`. Exit 0 ok, 1 rule errors (or none loadable), 2 usage.

`run` once filtering: 0 at the end of input or on SIGTERM, 130 on SIGINT, 141 when the reader closed
stdout (lines were not delivered); SIGHUP reloads the rules (reload/), from the moment the options
are read. Every stop writes out each line read and logs `stopped` with the reason and the final
counters."""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Callable
from typing import Any, NamedTuple
from pathlib import Path

from shellsieve import log as logmod
from shellsieve.admit import Refusal, admit, bad_selection, exceptions_for, fatal
from shellsieve.build import build
from shellsieve.compile.ruleset import Ruleset
from shellsieve.check_output import (OUTPUT_FORMATS, CheckReport, ExceptionsReport, output_format, render_json,
                                     render_text)
from shellsieve.diagnostics import Code, Diagnostic, printable
from shellsieve.events.envelope import parse_fields
from shellsieve.events.formats import FORMATS
from shellsieve.events.hostos import HOST_OS
from shellsieve.model.selection import SEVERITIES, STATUSES, Selection, select
from shellsieve.compile.cache import default_cache_dir
from shellsieve.model.exceptions import RuleException
from shellsieve.rules.discover import load_rules, seed_patterns, shipped_patterns
from shellsieve.serve.endpoints import Endpoint, EndpointError, parse_forward, parse_listen
from shellsieve.settings import (ALERT_DOCS, ServeSettings, Settings, describe, parse_duration, parse_suppress_by,
                                 within)

__all__ = ["main", "build", "parser", "Parser"]

_DEFAULTS = Settings()


def _cache_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache-dir", type=Path, metavar="PATH",
                   help="where compiled databases are kept, keyed by a hash of the rule files "
                        "(default: $SHELLSIEVE_CACHE_DIR, else $XDG_CACHE_HOME/shellsieve, else ~/.cache/shellsieve)")
    p.add_argument("--no-cache", action="store_true", help="compile the rules every time; read and write no cache")


def _setting(name: str, parse: Callable[[str], float]) -> Callable[[str], float]:
    """An argparse `type=` for the numeric setting `name`: parsed, then checked against its bounds
    (settings.py), so `--audit-timeout inf` or `--max-line-bytes -1` is refused at start, exit 2."""
    def convert(text: str) -> float:
        try:
            v = parse(text)
        except ValueError:
            v = None
        if v is None or not within(name, v):
            raise argparse.ArgumentTypeError(f"must be {describe(name)}, got {text!r}")
        return v
    convert.__name__ = name  # what argparse names on a bare ValueError
    return convert


def _parsed(parse: Callable[[str], tuple[str, ...]], name: str) -> Callable[[str], tuple[str, ...]]:
    """An argparse `type=` from a parser raising ValueError: its message, exit 2 (--envelope-fields:
    comma-separated names, "" for none; --suppress-by: the syntax, the names are checked at start)."""
    def convert(text: str) -> tuple[str, ...]:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = name
    return convert


def _duration(name: str) -> Callable[[str], float]:
    """An argparse `type=` for a duration setting: `300`, `300s`, `5m`, `1h`, within its bounds."""
    check = _setting(name, parse_duration)

    def convert(text: str) -> float:
        try:
            return check(text)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"must be a duration (300, 300s, 5m, 1h) of {describe(name)} "
                                             f"seconds, got {text!r}") from None
    convert.__name__ = name
    return convert


class Parser(argparse.ArgumentParser):
    """argparse's parser that also keeps the options it was given (`options`) and, on the top-level
    parser, its commands (`commands`): docs/gen_options.py tabulates them from these, not from
    argparse's private attributes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.options: list[argparse.Action] = []  # before argparse's __init__, which adds -h
        self.commands: dict[str, Parser] = {}
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        self.options.append(action)
        return action


def parser() -> Parser:
    p = Parser(
        prog="shellsieve",
        description="Tag reverse shells and web-server shells in process events, inline in a log pipeline.",
    )
    p.add_argument("--version", action="store_true",
                   help="print shellsieve's, Hyperscan's, the hyperscan package's and Python's versions")
    sub = p.add_subparsers(dest="command")
    run = sub.add_parser("run", help="filter events from stdin to stdout (one JSON event per line)",
                         description="Read events on stdin, write every event to stdout in order; "
                                     "events a rule matches leave enriched with the rule and MITRE ATT&CK ids. "
                                     "Logs and stats go to stderr as JSON.")
    _engine_options(run)
    p.commands = {"run": run, "serve": _serve_options(sub), "consume": _consume_parser(sub),
                  "check": _check_options(sub), "rules": _list_options(sub), "explain": _explain_options(sub)}
    return p


def _serve_options(sub: Any) -> Parser:
    srv = sub.add_parser("serve", help="filter events arriving over HTTP, TCP, unix sockets or Fluent forward",
                         description="Listen for events (Vector's http/socket sinks, Fluent Bit's http/tcp/"
                                     "forward outputs), run them through the same engine as `run`, and deliver "
                                     "every event in order to one output. HTTP requests and forward chunks are "
                                     "acknowledged only once their events were delivered. Logs on stderr.")
    srv.add_argument("--listen", action="append", type=_endpoint(parse_listen), required=True, metavar="URL",
                     help="http://HOST:PORT, tcp://HOST:PORT, unix:///PATH or forward://HOST:PORT; repeatable; "
                          "?host_os=...&envelope=... per listener")
    srv.add_argument("--forward", type=_endpoint(parse_forward), default=parse_forward("stdout"), metavar="URL",
                     help="where every event goes: http://HOST:PORT/PATH (?format=json_array for Fluent Bit's "
                          "http input), tcp://HOST:PORT, unix:///PATH, forward://HOST:PORT (?tag=...), or stdout "
                          "(default: stdout)")
    for name, flag, parse, metavar, what in _SERVE_OPTIONS:
        srv.add_argument(flag, dest=name, type=_setting(name, parse), default=getattr(_SERVE_DEFAULTS, name),
                         metavar=metavar, help=f"{what} (default: %(default)s)")
    _engine_options(srv)
    serve: Parser = srv  # sub.add_parser is untyped: the parser class is the top-level one's
    return serve


def _check_options(sub: Any) -> Parser:
    chk = sub.add_parser("check", help="load and compile rules; list them and every rule skipped, with the reason",
                         description="Load and compile the rules as `run` would and report: rules by format with "
                                     "their ids, every skipped rule with file, rule id and reason, compile time "
                                     "and database size.")
    _rules_option(chk)
    _selection_options(chk)
    _exceptions_option(chk)
    _cache_options(chk)
    chk.add_argument("--strict", action="store_true",
                     help="exit 1 if any rule is skipped as an error (unsupported rule types are not errors)")
    chk.add_argument("--quiet", action="store_true", help="print the summary only, not every loaded rule")
    chk.add_argument("--format", choices=OUTPUT_FORMATS, default="auto",
                     help="text: a summary to read; json: JSON lines carrying the same (docs/rules.md#check-json-"
                          "lines); auto: text when stderr is a terminal, else json (default: %(default)s)")
    chk.add_argument("--json", dest="format", action="store_const", const="json", help="the same as --format json")
    check: Parser = chk  # sub.add_parser is untyped: the parser class is the top-level one's
    return check


def _list_options(sub: Any) -> Parser:
    lst = sub.add_parser("rules", help="list the rules a selection keeps (nothing is compiled)",
                         description="Load the rules and apply the selection options as `run` would, then list "
                                     "id, name, format, severity, status and file:line; --json: JSON lines.")
    _rules_option(lst)
    _selection_options(lst)
    lst.add_argument("--json", action="store_true", help="one JSON object per rule per line")
    rules: Parser = lst  # sub.add_parser is untyped: the parser class is the top-level one's
    return rules


def _explain_options(sub: Any) -> Parser:
    exp = sub.add_parser("explain", help="say why each rule did or did not match one event",
                         description="Read one event (any input format `run` reads) and print, for every rule "
                                     "whose anchors fired or that --rule names: matched or not and, for a rule "
                                     "that did not match, the first condition that failed with the field, the "
                                     "event's value and what the rule expects. See docs/explain.md.")
    exp.add_argument("event", nargs="?", default="-", metavar="EVENT_FILE",
                     help="file holding the event: one JSON line (or one pretty-printed JSON object), an "
                          "auditd event's records, a Sysmon or Wazuh event, a command line; - for stdin "
                          "(default)")
    _rules_option(exp)
    exp.add_argument("--rule", action="append", metavar="ID",
                     help="explain this rule (repeatable), whether its anchors fired or not; "
                          "default: every rule whose anchors fired")
    exp.add_argument("--json", action="store_true", help="print one JSON document")
    exp.add_argument("--input-format", "--format", dest="input_format", default="auto", choices=FORMATS,
                     help="format of the event, as `run --format` (default: %(default)s)")
    exp.add_argument("--envelope-fields", type=_parsed(parse_fields, "envelope_fields"),
                     default=",".join(_DEFAULTS.envelope_fields), metavar="FIELDS",
                     help="as for `run` (default: %(default)s)")
    exp.add_argument("--host-os", default=_DEFAULTS.host_os, choices=HOST_OS,
                     help="as for `run` (default: %(default)s)")
    _selection_options(exp)
    _cache_options(exp)
    explain: Parser = exp
    return explain


def _rules_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rules", action="append", type=Path, metavar="PATH",
                   help="rule file or folder (Wazuh .xml, Elastic .toml, Sigma .yml); repeatable; "
                        "default: the rules shipped with shellsieve (the seed rules and shellsieve's own ruleset, "
                        "docs/ruleset.md)")
    p.add_argument("--seed-rules-only", action="store_true",
                   help="run the shipped seed rules alone, without shellsieve's own ruleset (patterns/shellsieve/); "
                        "not with --rules")


def _consume_parser(sub: Any) -> Parser:
    con = sub.add_parser("consume", help="filter events from a NATS JetStream stream, as one of N workers",
                         description="Pull events from a JetStream stream with a durable consumer, run them through "
                                     "the same engine as `run`, publish every event to --output-subject (alerts also "
                                     "to --alerts-subject) and ack each input once JetStream acknowledged its "
                                     "output (docs/nats.md). Needs pip install 'shellsieve[nats]'.")
    con.add_argument("--nats-url", default="nats://127.0.0.1:4222", metavar="URL",
                     help="the server, nats://HOST:PORT or tls://HOST:PORT (default: %(default)s)")
    con.add_argument("--stream", default="EVENTS", help="the input stream (default: %(default)s)")
    con.add_argument("--consumer", metavar="NAME",
                     help="the durable pull consumer (default: shellsieve-{partition}, or shellsieve unpartitioned)")
    con.add_argument("--subject", metavar="FILTER",
                     help="the consumer's filter subject (default: events.p.{partition}.> with --partitions, "
                          "else events.>)")
    con.add_argument("--partition", metavar="INDEX",
                     help="this worker's partition, 0..N-1, or auto: the host name's ordinal (a StatefulSet pod)")
    con.add_argument("--partitions", type=int, metavar="N",
                     help="the partition count of the stream's {{partition(N,1)}} mapping; checked against the "
                          "stream at start and while running")
    con.add_argument("--output-subject", default="shellsieve.events", metavar="SUBJECT",
                     help="where every event is published (default: %(default)s)")
    con.add_argument("--alerts-subject", default="shellsieve.alerts", metavar="SUBJECT",
                     help="where alerts are also published; \"\" turns this off (default: %(default)s)")
    con.add_argument("--batch", type=int, default=256, metavar="N", help="messages per fetch (default: %(default)s)")
    con.add_argument("--ack-wait", type=float, default=30.0, metavar="SECONDS",
                     help="the consumer's ack wait when --create makes it (default: %(default)s)")
    con.add_argument("--create", action="store_true",
                     help="create the input stream (with the partition mapping), the output stream and the "
                          "consumer when missing, instead of refusing to start")
    _engine_options(con)
    consume: Parser = con  # sub.add_parser is untyped: the parser class is the top-level one's
    return consume


def _engine_options(p: argparse.ArgumentParser) -> None:
    """The options of the engine, the same for `run` and `serve`."""
    _rules_option(p)
    _selection_options(p)
    _exceptions_option(p)
    _cache_options(p)
    _output_options(p)
    _input_options(p)
    _suppress_options(p)
    _operation_options(p)


def _output_options(p: argparse.ArgumentParser) -> None:
    """What leaves on stdout and stderr, and whether a rule that cannot run stops the start."""
    p.add_argument("--only-alerts", action="store_true",
                   help="write only the events a rule matched (default: write every event)")
    p.add_argument("--alert-docs", choices=ALERT_DOCS, default=_DEFAULTS.alert_docs,
                   help="split: after each alert, one alert document per matching rule, marked "
                        "shellsieve.document = alert (docs/alerts.md; default: %(default)s)")
    p.add_argument("--strict", action="store_true", help="refuse to start if any rule cannot be run faithfully")
    p.add_argument("--stats-interval", type=_setting("stats_interval_s", float),
                   default=_DEFAULTS.stats_interval_s, metavar="SECONDS",
                   help="seconds between stats events on stderr; 0 turns them off (default: %(default)s)")


def _input_options(p: argparse.ArgumentParser) -> None:
    """How input lines are read: their size, format, envelope, OS and the auditd state."""
    p.add_argument("--max-line-bytes", type=_setting("max_line_bytes", int),
                   default=_DEFAULTS.max_line_bytes, metavar="N",
                   help="longer lines are forwarded unscanned and counted (default: %(default)s)")
    p.add_argument("--format", dest="input_format", default="auto", choices=FORMATS,
                   help="input format; auto detects it line by line: a JSON object is ECS, Sysmon "
                        "(winlog.event_data or Event.EventData) or Wazuh (full_log); a text line is an "
                        "auditd record, a Sysmon for Linux XML event in syslog, or a plain command line "
                        "(default: %(default)s)")
    p.add_argument("--envelope-fields", type=_parsed(parse_fields, "envelope_fields"),
                   default=",".join(_DEFAULTS.envelope_fields), metavar="FIELDS",
                   help="top-level JSON fields in which a shipper carries the raw line (Vector: message; "
                        "Fluent Bit, Docker, CRI: log), comma-separated; the line is decoded as what it is "
                        "and an alert keeps the envelope's fields; \"\" turns this off (default: %(default)s)")
    p.add_argument("--host-os", default=_DEFAULTS.host_os, choices=HOST_OS,
                   help="host.os.type of plain command lines, which name no OS, so rules scoped to an OS "
                        "run on them; auto: windows if the line looks Windows (C:\\, \\\\server, .exe, "
                        ".ps1, cmd /c, powershell), else linux; none: leave it absent. An event's own "
                        "host.os.type is never replaced (default: %(default)s)")
    p.add_argument("--passwd", type=Path, metavar="FILE",
                   help="passwd(5) file naming the uids of auditd events (user.name); "
                        "auditd's ENRICHED names are used first")
    p.add_argument("--audit-timeout", type=_setting("audit_timeout_s", float),
                   default=_DEFAULTS.audit_timeout_s, metavar="SECONDS",
                   help="an auditd event whose EOE record has not arrived leaves after this long "
                        "(default: %(default)s)")
    p.add_argument("--pid-table-size", type=_setting("pid_table_size", int),
                   default=_DEFAULTS.pid_table_size, metavar="N",
                   help="pids remembered to name the parent of auditd events (default: %(default)s)")


def _suppress_options(p: argparse.ArgumentParser) -> None:
    """Alert suppression (docs/suppression.md)."""
    p.add_argument("--suppress-window", dest="suppress_window_s", type=_duration("suppress_window_s"),
                   default=_DEFAULTS.suppress_window_s, metavar="DURATION",
                   help="alerts of one rule with the same --suppress-by values within this time of the first "
                        "leave as events, not alerts; the next alert counts them: 300, 300s, 5m, 1h "
                        "(default: off; recommended: 5m; docs/suppression.md)")
    p.add_argument("--suppress-by", type=_parsed(parse_suppress_by, "suppress_by"),
                   default=",".join(_DEFAULTS.suppress_by), metavar="FIELDS",
                   help="the ECS fields of the suppression key besides the rule, comma-separated; a|b: a, "
                        "else b (default: %(default)s)")
    p.add_argument("--suppress-max-keys", type=_setting("suppress_max_keys", int), metavar="N",
                   default=_DEFAULTS.suppress_max_keys, help="suppression keys held at once; the oldest "
                   "is evicted and counted (default: %(default)s)")


def _operation_options(p: argparse.ArgumentParser) -> None:
    """Running it: reloads, metrics and the log level."""
    p.add_argument("--watch", action="store_true",
                   help="reload the rules when a rule file or --exceptions file changes (polled; a change "
                        "reloads once it held still for one interval). SIGHUP always reloads (docs/reload.md)")
    p.add_argument("--watch-interval", dest="watch_interval_s", type=_duration("watch_interval_s"),
                   default=_DEFAULTS.watch_interval_s, metavar="DURATION",
                   help="how often --watch looks at the files (default: %(default)s s)")
    p.add_argument("--metrics-addr", type=_metrics_addr, metavar="HOST:PORT",
                   help="serve Prometheus metrics on /metrics, and /healthz and /readyz, at this address "
                        "(docs/metrics.md; default: off)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="level of the filter's own logs on stderr (default: %(default)s)")


_SERVE_DEFAULTS = ServeSettings()
_SERVE_OPTIONS = (
    ("buffer_events", "--buffer-events", int, "N",
     "events accepted and not yet delivered, at most; when full HTTP answers 503 and streams are not read"),
    ("max_body_bytes", "--max-body-bytes", int, "N", "larger HTTP request bodies are refused with 413"),
    ("batch_events", "--batch-events", int, "N", "events per request to the downstream"),
    ("drain_timeout_s", "--drain-timeout", float, "SECONDS",
     "on SIGTERM, how long the buffered events may take to reach the downstream"),
    ("idle_timeout_s", "--idle-timeout", float, "SECONDS", "a connection that sends nothing this long is closed"),
    ("retry_max_s", "--retry-max", float, "SECONDS", "the longest wait between delivery attempts"),
    ("request_timeout_s", "--request-timeout", float, "SECONDS",
     "how long the downstream may take to answer one request"),
)


def _metrics_addr(text: str) -> tuple[str, int]:
    from shellsieve.run.metrics import parse_addr

    try:
        return parse_addr(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _endpoint(parse: Callable[[str], Endpoint]) -> Callable[[str], Endpoint]:
    def convert(text: str) -> Endpoint:
        try:
            return parse(text)
        except EndpointError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = "address"
    return convert


def _selection(args: argparse.Namespace) -> Selection:
    return Selection(args.min_severity, tuple(args.include_rule or ()), tuple(args.exclude_rule or ()),
                     tuple(args.tag or ()), tuple(args.status or ()))


def _status(text: str) -> str:
    """An argparse `type=` for --status: a Sigma status or Elastic maturity, any case."""
    if text.lower() not in STATUSES:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(STATUSES)}, got {text!r}")
    return text.lower()


def _selection_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--min-severity", default="low", choices=SEVERITIES,
                   help="leave out rules below this severity (default: %(default)s)")
    p.add_argument("--include-rule", action="append", metavar="ID",
                   help="run only the rules with these ids; repeatable")
    p.add_argument("--exclude-rule", action="append", metavar="ID", help="never run the rule with this id; repeatable")
    p.add_argument("--tag", action="append", metavar="TAG",
                   help="run only rules with one of these tags (Sigma attack.t1059, Elastic \"Tactic: Execution\"); "
                        "repeatable")
    p.add_argument("--status", action="append", metavar="STATUS", type=_status,
                   help="run only rules of these statuses (Sigma stable/test/experimental/deprecated/unsupported, "
                        "Elastic production/development/deprecated); repeatable; default: all but deprecated "
                        "and unsupported")


def _exceptions_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--exceptions", action="append", type=Path, metavar="FILE",
                   help="YAML file of rule exceptions: events a rule must not alert on, each with a comment "
                        "saying why (docs/exceptions.md); repeatable")


def _cache_dir(args: argparse.Namespace) -> Path | None:
    return None if args.no_cache else (args.cache_dir or default_cache_dir())


def _check(args: argparse.Namespace) -> int:
    cache_dir = _cache_dir(args)
    rules, ruleset, diags = build(args.rules, cache_dir, _selection(args))
    if cache_dir is not None and ruleset.single_database is not None:
        # check leaves the cache as a long run would: with the line database's single-match twin, which
        # `run` builds in a thread after its start. A run shorter than that compile (13 CPU-s with the
        # public collections) never stores it and pays it again, in the background, every time.
        ruleset.single_database.database()
    exceptions, ediags = exceptions_for(args.exceptions, ruleset)
    report = CheckReport(ruleset, diags, args.strict, args.quiet,
                         ExceptionsReport(args.exceptions, exceptions, ediags) if args.exceptions else None)
    render = render_json if output_format(args.format, sys.stderr) == "json" else render_text
    sys.stdout.write(render(report))
    return _check_status(ruleset, diags + ediags, args.strict)


def _check_status(ruleset: Ruleset, diags: list[Diagnostic], strict: bool) -> int:
    """2 for a selection naming no rule, 1 for no rule loaded or (--strict) a refused one, else 0."""
    if bad_selection(diags):
        return 2
    if not ruleset.rules:
        return 1
    return 1 if strict and fatal(diags, strict=True) else 0


class _Started(NamedTuple):
    settings: Settings
    ruleset: Ruleset
    exceptions: list[RuleException]
    diagnostics: list[Diagnostic]  # of the rules running: a reload compares its errors with these


def _start(args: argparse.Namespace, log: Any) -> _Started | int:
    """Settings, compiled rules and the exceptions in force for `run` and `serve`, with `started`
    logged; or an exit status."""
    if args.passwd is not None and not args.passwd.is_file():
        log.error("startup_failed", reason="passwd file not found", path=str(args.passwd))
        return 2
    settings = Settings(stats_interval_s=args.stats_interval, max_line_bytes=args.max_line_bytes,
                        only_alerts=args.only_alerts, strict=args.strict, input_format=args.input_format,
                        audit_timeout_s=args.audit_timeout, pid_table_size=args.pid_table_size,
                        passwd=str(args.passwd) if args.passwd else None,
                        envelope_fields=args.envelope_fields, host_os=args.host_os,
                        suppress_window_s=args.suppress_window_s, suppress_by=args.suppress_by,
                        suppress_max_keys=args.suppress_max_keys, alert_docs=args.alert_docs,
                        watch=args.watch, watch_interval_s=args.watch_interval_s)
    rules, ruleset, diags = build(args.rules, _cache_dir(args), _selection(args))
    for d in diags:
        # which copy of a rule id runs is worth a line at the default level; an identical copy is not
        info = "info" if d.code is Code.REPLACED else "debug"
        level = {"error": "error", "info": info}.get(d.severity, "warning")
        getattr(log, level)("rule_diagnostic", **d.to_builtins())
    verdict = admit(ruleset, diags, settings, args.exceptions)
    if isinstance(verdict, Refusal):
        if verdict.reason == "bad exceptions file":
            for d in verdict.diagnostics:
                log.error("exception_diagnostic", **d.to_builtins())
        log.error("startup_failed", reason=verdict.reason, **verdict.fields)
        return verdict.status
    exceptions = verdict.exceptions
    for d in verdict.exception_diagnostics:
        log.warning("exception_diagnostic", **d.to_builtins())
    errors = fatal(diags, settings.strict)
    log.info("started", rules=len(ruleset.rules), skipped=len(errors), input_format=settings.input_format,
             envelope_fields=list(settings.envelope_fields), host_os=settings.host_os,
             suppress_window_s=settings.suppress_window_s, suppress_by=list(settings.suppress_by),
             suppress_max_keys=settings.suppress_max_keys, exceptions=len(exceptions),
             patterns=ruleset.pattern_count,
             database_bytes=ruleset.database_bytes, compile_s=round(ruleset.compile_seconds, 3),
             cache=ruleset.cache_status)
    if ruleset.single_database is not None:
        ruleset.single_database.prepare()  # off the hot path, before a block can need it
    # The rules live until exit: frozen, a full collection never walks them again. With the public
    # rulesets loaded, one took 0.13 s, 8% of the CPU of filtering 20k events.
    gc.collect()
    gc.freeze()
    return _Started(settings, ruleset, exceptions, diags)


def _metrics_thread(args: argparse.Namespace, log: Any) -> tuple[Any, Any] | int:
    """--metrics-addr for `run` and `consume`: (Metrics, its serving thread), both None without the
    option; or exit 2 when the address cannot be bound. Bound before the rules compile: a taken port
    stops the start before anything is read."""
    if args.metrics_addr is None:
        return None, None
    from shellsieve.run.metrics import Metrics, MetricsThread

    metrics = Metrics()
    try:
        server = MetricsThread(metrics, *args.metrics_addr)
    except OSError as exc:
        return _metrics_failed(log, args.metrics_addr, exc)
    server.start()
    host, port = server.address[0], server.address[1]
    log.info("metrics_listening", address=_addr_text((str(host), port)))
    return metrics, server


def _run(args: argparse.Namespace) -> int:
    logmod.configure(args.log_level)
    log = logmod.get_logger()

    def filter_stdin(started: _Started, metrics: Any, reloads: Any, latch: Any) -> int:
        from shellsieve.run.loop import EXIT_CODES, run_filter
        from shellsieve.run.progress import progress_for

        stats = run_filter(started.ruleset, started.settings, sys.stdin.buffer, sys.stdout.buffer, log,
                           started.exceptions, metrics, progress_for(sys.stdin.buffer, sys.stderr), reloads, latch)
        return EXIT_CODES[stats.stop_reason]

    return _filtering(args, log, filter_stdin)


def _filtering(args: argparse.Namespace, log: Any, go: Callable[[_Started, Any, Any, Any], int]) -> int:
    """`run` and `consume` around their loop: hot reload, --metrics-addr, the rules started; then
    go(started, metrics or None, the reloader, the SIGHUP latch), whose status is returned."""
    with _Reloading(args, log) as reloading:
        served = _metrics_thread(args, log)
        if isinstance(served, int):
            return served
        metrics, server = served
        try:
            started = _start(args, log)
            if isinstance(started, int):
                return started
            return go(started, metrics, reloading.start(started), reloading.latch)
        finally:
            if server is not None:
                server.close()


class _Reloading:
    """Hot reload around `run` and `serve`: SIGHUP is caught from before the first compile (a reload
    then follows the start), the watched files' state is taken before the rules are read, and the
    reload thread, the watcher and a compile process still running are stopped at the end."""

    def __init__(self, args: argparse.Namespace, log: Any) -> None:
        from shellsieve.run.signals import HangupLatch

        self.args, self.log = args, log
        self.latch = HangupLatch()
        self.reloader: Any = None
        self.watcher: Any = None
        self._seen: Any = None

    def __enter__(self) -> _Reloading:
        self.latch.install()
        if self.args.watch:
            from shellsieve.reload.watch import signature

            self._seen = signature(self._paths(), self.args.exceptions or [])
        return self

    def _paths(self) -> list[Path]:
        return self.args.rules or [shipped_patterns()]

    def start(self, started: _Started) -> Any:
        """The Reloader for the rules just started (and the watcher, with --watch)."""
        from shellsieve.reload.reloader import Reloader, RuleSource

        args = self.args
        source = RuleSource(args.rules, _cache_dir(args), _selection(args), args.exceptions, started.settings)
        self.reloader = Reloader(source, started.diagnostics, self.log)
        if args.watch:
            from shellsieve.reload.watch import Watcher

            self.watcher = Watcher(self._paths(), args.exceptions or [], started.settings.watch_interval_s,
                                   self.reloader.request, self._seen)
            self.watcher.start()
        return self.reloader

    def __exit__(self, *exc: object) -> None:
        if self.watcher is not None:
            self.watcher.close()
        if self.reloader is not None:
            self.reloader.close()
        self.latch.close()


def _addr_text(addr: tuple[str, int]) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _metrics_failed(log: Any, addr: tuple[str, int], exc: OSError) -> int:
    log.error("startup_failed", reason="cannot listen", option="--metrics-addr", address=_addr_text(addr),
              error=str(exc))
    return 2


def _serve(args: argparse.Namespace) -> int:
    logmod.configure(args.log_level)
    log = logmod.get_logger()
    serve_settings = ServeSettings(**{name: getattr(args, name) for name, *_ in _SERVE_OPTIONS})
    # imported before the start freezes what is loaded: aiohttp's modules are then never walked by
    # the collector again either
    from shellsieve.serve.app import serve

    with _Reloading(args, log) as reloading:
        metrics_sock = None
        if args.metrics_addr is not None:
            # bound before the rules compile: a taken port stops the start before anything is read
            import socket

            try:
                metrics_sock = socket.create_server(args.metrics_addr, family=socket.AF_INET6
                                                    if ":" in args.metrics_addr[0] else socket.AF_INET)
            except OSError as exc:
                return _metrics_failed(log, args.metrics_addr, exc)
            log.info("metrics_listening", address=_addr_text(metrics_sock.getsockname()))
        try:
            started = _start(args, log)
            if isinstance(started, int):
                return started
            return serve(started.ruleset, started.settings, serve_settings, args.listen, args.forward, log,
                         started.exceptions, metrics_sock, reloading.start(started), reloading.latch)
        finally:
            if metrics_sock is not None:
                metrics_sock.close()


def _consume(args: argparse.Namespace) -> int:
    logmod.configure(args.log_level)
    log = logmod.get_logger()
    try:
        from shellsieve.consume.worker import consume
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith("nats"):
            raise
        log.error("startup_failed", reason="the NATS client is not installed: pip install 'shellsieve[nats]'",
                  missing=exc.name)
        return 2
    import asyncio

    from shellsieve.consume.options import OptionError, resolve

    try:
        opts = resolve(args.nats_url, args.stream, args.consumer, args.subject, args.partition, args.partitions,
                       args.output_subject, args.alerts_subject, args.batch, args.ack_wait, args.create)
    except OptionError as exc:
        log.error("startup_failed", reason=str(exc), option=exc.option)
        return 2

    def work(started: _Started, metrics: Any, reloads: Any, latch: Any) -> int:
        return asyncio.run(consume(opts, started.ruleset, started.settings, log, started.exceptions, metrics,
                                   reloads, latch))

    return _filtering(args, log, work)


def _explain(args: argparse.Namespace) -> int:
    from shellsieve.explain.command import ExplainError, choose, explain, read_event

    try:
        data, name = read_event(args.event)
        rules, ruleset, diags = build(args.rules, _cache_dir(args), _selection(args))
        bad = bad_selection(diags)
        if bad:
            raise ExplainError("; ".join(d.message for d in bad))
        settings = Settings(input_format=args.input_format, envelope_fields=args.envelope_fields,
                            host_os=args.host_os)
        sys.stdout.write(explain(ruleset, settings, data, name, choose(ruleset, diags, args.rule or []),
                                 args.json))
    except ExplainError as exc:
        sys.stderr.write(f"shellsieve explain: error: {exc}\n")
        return 2
    return 0


def _list_rules(args: argparse.Namespace) -> int:
    from shellsieve.listing import render_json_lines, render_table, rule_rows

    rules, diags = load_rules(args.rules or [shipped_patterns()])
    rules, sdiags = select(rules, _selection(args))
    if bad := bad_selection(sdiags):
        for d in bad:
            print(f"shellsieve rules: {printable(d.message)}", file=sys.stderr)
        return 2
    rows = rule_rows(rules)
    sys.stdout.write(render_json_lines(rows) if args.json else render_table(rows))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.version:
        from shellsieve.version import render_versions

        print(render_versions())
        return 0
    if args.command is None:
        p.error("a command is required (run, serve, consume, check, rules, explain) or --version")
    if args.seed_rules_only:
        # --rules replaces the shipped rules, so "the seed rules alone" of other rules means nothing
        if args.rules:
            p.error("--seed-rules-only runs the shipped seed rules; it cannot be combined with --rules")
        args.rules = seed_patterns()
    try:
        return {"check": _check, "run": _run, "serve": _serve, "explain": _explain, "rules": _list_rules,
                "consume": _consume}[args.command](args)
    except KeyboardInterrupt:  # before filtering began (rule compile): nothing was read
        return 130


if __name__ == "__main__":
    sys.exit(main())
