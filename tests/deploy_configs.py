"""Readers and checks for the shipped deploy/ configs: each check returns the problems it found.

Every option name allowed below was read in the shipper's source (the path is in the comment);
a config using any other name, or two ends of a hop that disagree with the `shellsieve serve`
command the config names (`# serve: ...`), is a problem.
"""

from __future__ import annotations

import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from shellsieve.serve.endpoints import Endpoint, parse_forward, parse_listen

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"

# --- Vector: option names by component type, as dotted paths (vectordotdev/vector) ------------------
VECTOR_GLOBAL = {"data_dir", "sources", "transforms", "sinks"}
# src/config/sink.rs (SinkOuter), lib/vector-buffers/src/config.rs (type, max_events, max_size,
# when_full), lib/vector-core/src/config/mod.rs (AcknowledgementsConfig.enabled)
VECTOR_SINK_COMMON = {"type", "inputs", "buffer.type", "buffer.max_size", "buffer.max_events",
                      "buffer.when_full", "healthcheck.enabled", "acknowledgements.enabled"}
VECTOR_KEYS: dict[tuple[str, str], set[str]] = {
    # src/sources/file.rs (FileConfig)
    ("sources", "file"): {"type", "include", "exclude", "read_from", "data_dir", "ignore_checkpoints",
                          "max_line_bytes", "glob_minimum_cooldown_ms"},
    # src/sources/journald.rs (JournaldConfig)
    ("sources", "journald"): {"type", "since_now", "current_boot_only", "include_units",
                              "exclude_units", "data_dir", "batch_size"},
    # src/sources/http_server.rs (SimpleHttpConfig); `acknowledgements` on sources is deprecated
    # (src/config/source.rs: do_acknowledgements), so it is not allowed here
    ("sources", "http_server"): {"type", "address", "path", "method", "strict_path", "response_code",
                                 "decoding.codec", "framing.method", "path_key", "host_key"},
    # src/sources/socket/mod.rs (Mode, tag `mode`), src/sources/socket/tcp.rs (TcpConfig)
    ("sources", "socket"): {"type", "mode", "address", "decoding.codec", "framing.method",
                            "shutdown_timeout_secs", "connection_limit"},
    # src/sources/exec/mod.rs (ExecConfig, StreamingConfig)
    ("sources", "exec"): {"type", "mode", "command", "include_stderr", "maximum_buffer_size_bytes",
                          "decoding.codec", "framing.method", "working_directory", "environment",
                          "clear_environment", "streaming.respawn_on_exit",
                          "streaming.respawn_interval_secs"},
    # src/transforms/filter.rs, src/transforms/route.rs, src/transforms/remap.rs
    ("transforms", "filter"): {"type", "inputs", "condition"},
    ("transforms", "route"): {"type", "inputs", "route.*", "reroute_unmatched"},
    ("transforms", "remap"): {"type", "inputs", "source", "drop_on_error", "drop_on_abort"},
    # src/sinks/http/config.rs (HttpSinkConfig), src/sinks/util/http.rs (RequestConfig,
    # RetryStrategy), src/sinks/util/service.rs (TowerRequestConfig), src/sinks/util/batch.rs
    ("sinks", "http"): VECTOR_SINK_COMMON | {
        "uri", "method", "compression", "encoding.codec", "framing.method", "batch.max_events",
        "batch.max_bytes", "batch.timeout_secs", "request.concurrency", "request.timeout_secs",
        "request.retry_attempts", "request.retry_initial_backoff_secs",
        "request.retry_max_duration_secs", "request.retry_jitter_mode", "retry_strategy.type"},
    # src/sinks/socket.rs (Mode, tag `mode`), src/sinks/util/tcp.rs (TcpSinkConfig.address)
    ("sinks", "socket"): VECTOR_SINK_COMMON | {"mode", "address", "encoding.codec", "framing.method"},
    # src/sinks/nats/config.rs (NatsSinkConfig: jetstream publishes wait for the acknowledgement);
    # except_fields: lib/codecs/src/encoding/transformer.rs (Transformer)
    ("sinks", "nats"): VECTOR_SINK_COMMON | {"url", "subject", "jetstream", "connection_name", "encoding.codec",
                                             "encoding.except_fields"},
    # src/sources/nats/config.rs (NatsSourceConfig, JetStreamConfig, BatchConfig)
    ("sources", "nats"): {"type", "url", "connection_name", "subject", "queue", "decoding.codec", "framing.method",
                          "subject_key_field", "subscriber_capacity", "jetstream.stream", "jetstream.consumer",
                          "jetstream.batch_config.batch", "jetstream.batch_config.max_bytes"},
    # src/sinks/file/mod.rs (FileSinkConfig)
    ("sinks", "file"): VECTOR_SINK_COMMON | {"path", "encoding.codec", "framing.method",
                                             "idle_timeout_secs"},
}
# Values with a closed set, by dotted key (the serde names in the files above)
VECTOR_VALUES: dict[str, set[Any]] = {
    "framing.method": {"bytes", "character_delimited", "length_delimited", "newline_delimited",
                       "octet_counting"},  # lib/codecs/src/{encoding/framing/framer,decoding/mod}.rs
    "buffer.type": {"memory", "disk"},  # lib/vector-buffers/src/config.rs
    "buffer.when_full": {"block", "drop_newest", "overflow"},  # lib/vector-buffers/src/lib.rs
    "request.retry_jitter_mode": {"None", "Full"},  # src/sinks/util/retries.rs (no rename_all)
    "retry_strategy.type": {"none", "default", "all", "custom"},  # src/sinks/util/http.rs
    "read_from": {"beginning", "end"},  # src/sources/file.rs (ReadFromConfig)
}
DISK_BUFFER_MIN = 268435488  # lib/vector-buffers/src/config.rs: validation(range(min = 268435488))

# --- Fluent Bit: property names by plugin (fluent/fluent-bit), lower case ---------------------------
FB_INPUT_COMMON = {"name", "tag", "alias", "listen", "port", "mem_buf_limit", "storage.type",
                   "storage.pause_on_chunks_overlimit", "threaded"}  # src/flb_input.c
FB_OUTPUT_COMMON = {"name", "match", "match_regex", "alias", "host", "port", "retry_limit", "workers",
                    "storage.total_limit_size"}  # src/flb_output.c
FB_KEYS: dict[tuple[str, str], set[str]] = {
    ("service", ""): {"flush", "grace", "log_level", "storage.path", "storage.sync",
                      "storage.backlog.mem_limit"},  # include/fluent-bit/flb_config.h
    # plugins/in_tail/tail.c (config_map)
    ("input", "tail"): FB_INPUT_COMMON | {"path", "exclude_path", "db", "read_from_head", "key",
                                          "buffer_chunk_size", "buffer_max_size", "skip_long_lines",
                                          "refresh_interval", "rotate_wait"},
    # plugins/in_http/http.c (config_map); listen/port from src/flb_input.c
    ("input", "http"): FB_INPUT_COMMON | {"successful_response_code", "tag_key", "success_header",
                                          "enable_health_endpoint"},
    # plugins/in_forward/fw.c (config_map)
    ("input", "forward"): FB_INPUT_COMMON | {"tag_prefix", "unix_path", "buffer_chunk_size",
                                             "buffer_max_size"},
    # plugins/filter_rewrite_tag/rewrite_tag.c (config_map)
    ("filter", "rewrite_tag"): {"name", "match", "rule", "emitter_name", "emitter_storage.type",
                                "emitter_mem_buf_limit"},
    # plugins/out_http/http.c (config_map)
    ("output", "http"): FB_OUTPUT_COMMON | {"uri", "format", "json_date_key", "json_date_format",
                                            "compress", "header", "http_method"},
    # plugins/out_forward/forward.c (config_map)
    ("output", "forward"): FB_OUTPUT_COMMON | {"require_ack_response", "send_options", "tag",
                                               "compress", "time_as_integer"},
    # plugins/out_nats (host and port only, from src/flb_output.c; the tag is the subject)
    ("output", "nats"): FB_OUTPUT_COMMON,
    # plugins/out_file/file.c (config_map)
    ("output", "file"): FB_OUTPUT_COMMON | {"path", "file", "format", "mkdir"},
}
FB_VALUES: dict[str, set[str]] = {
    "format@output.http": {"json", "json_stream", "json_lines", "gelf", "msgpack"},  # out_http
    "format@output.file": {"csv", "ltsv", "plain", "msgpack", "template", "out_file"},  # out_file
    "storage.type": {"filesystem", "memory", "memrb"},  # src/flb_input.c
}


# --- the serve command each config names ------------------------------------------------------------
class Serve:
    """The `shellsieve serve` command a config pairs with: its listen and forward endpoints."""

    def __init__(self, argv: list[str]) -> None:
        assert argv[:2] == ["shellsieve", "serve"] or argv[0].endswith("/shellsieve"), argv
        self.argv = argv
        self.listen: list[Endpoint] = []
        self.forward: Endpoint | None = None
        self.options: dict[str, str] = {}
        it = iter(argv[2:] if argv[1] == "serve" else argv)
        for arg in it:
            if arg == "--listen":
                self.listen.append(parse_listen(next(it)))
            elif arg == "--forward":
                self.forward = parse_forward(next(it))
            elif arg.startswith("--"):
                self.options[arg] = next(it)

    def listener(self, scheme: str) -> Endpoint:
        found = [ep for ep in self.listen if ep.scheme == scheme]
        assert len(found) == 1, f"one --listen {scheme}:// expected in {self.argv}"
        return found[0]


def serve_line(path: Path) -> Serve:
    """The `# serve: shellsieve serve ...` comment of a config, parsed."""
    lines = [ln for ln in path.read_text().splitlines() if ln.startswith("# serve: ")]
    assert len(lines) == 1, f"{path}: exactly one '# serve: ' line expected, found {len(lines)}"
    return Serve(shlex.split(lines[0].removeprefix("# serve: ")))


# --- loaders ----------------------------------------------------------------------------------------
def load_vector(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text())


def flatten(table: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Dotted keys of nested tables (`encoding.codec`); lists and scalars are leaves."""
    for key, value in table.items():
        if isinstance(value, dict):
            yield from flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def load_fluent_yaml(path: Path) -> dict[str, list[dict[str, str]]]:
    """A YAML config as {"service": [props], "input": [...], "filter": [...], "output": [...]}."""
    doc = yaml.safe_load(path.read_text())
    pipeline = doc.get("pipeline", {})
    out = {"service": [_lower(doc.get("service", {}))]}
    for kind in ("input", "filter", "output"):
        out[kind] = [_lower(item) for item in pipeline.get(kind + "s", [])]
    return out


def load_fluent_classic(path: Path) -> dict[str, list[dict[str, str]]]:
    """A classic config: `[SECTION]` headers, then indented `Key Value` lines, `#` comments."""
    out: dict[str, list[dict[str, str]]] = {"service": [], "input": [], "filter": [], "output": []}
    section: dict[str, str] | None = None
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            kind = line[1:-1].strip().lower()
            assert kind in out, f"{path}:{number}: unknown section {line}"
            section = {}
            out[kind].append(section)
            continue
        assert section is not None and raw[:1].isspace(), f"{path}:{number}: a property outside a section"
        key, _, value = line.partition(" ")
        assert value.strip(), f"{path}:{number}: {key} has no value"
        section[key.lower()] = value.strip()
    return out


def _lower(props: dict[str, Any]) -> dict[str, str]:
    # Fluent Bit property names are case-insensitive; YAML booleans and numbers compare as text.
    return {str(k).lower(): str(v).lower() if isinstance(v, bool) else str(v) for k, v in props.items()}


# --- checks -----------------------------------------------------------------------------------------
def vector_key_problems(cfg: dict[str, Any]) -> list[str]:
    """Option names and closed values outside what Vector's source defines."""
    problems = [f"unknown global option {k!r}" for k in cfg if k not in VECTOR_GLOBAL]
    for kind in ("sources", "transforms", "sinks"):
        for name, comp in cfg.get(kind, {}).items():
            allowed = VECTOR_KEYS.get((kind, comp.get("type", "")))
            if allowed is None:
                problems.append(f"{kind}.{name}: type {comp.get('type')!r} not verified")
                continue
            for key, value in flatten(comp):
                if key not in allowed and (key.split(".")[0] + ".*") not in allowed:
                    problems.append(f"{kind}.{name}: option {key!r} not verified for {comp['type']}")
                if key in VECTOR_VALUES and value not in VECTOR_VALUES[key]:
                    problems.append(f"{kind}.{name}: {key} = {value!r} not one of {sorted(VECTOR_VALUES[key])}")
            if comp.get("buffer", {}).get("type") == "disk" and comp["buffer"].get("max_size", 0) < DISK_BUFFER_MIN:
                problems.append(f"{kind}.{name}: a disk buffer needs max_size >= {DISK_BUFFER_MIN}")
    return problems


def vector_graph_problems(cfg: dict[str, Any]) -> list[str]:
    """Every `inputs` entry names a source, a transform, or a route of a route transform."""
    outputs = set(cfg.get("sources", {}))
    for name, comp in cfg.get("transforms", {}).items():
        outputs.add(name)
        if comp["type"] == "route":
            outputs.update(f"{name}.{route}" for route in comp["route"])
            if comp.get("reroute_unmatched", True):
                outputs.add(f"{name}._unmatched")
    problems = []
    for kind in ("transforms", "sinks"):
        for name, comp in cfg.get(kind, {}).items():
            if not comp.get("inputs"):
                problems.append(f"{kind}.{name} has no inputs")
            problems += [f"{kind}.{name}: input {i!r} is not defined" for i in comp.get("inputs", [])
                         if i not in outputs]
    return problems


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def _ndjson(comp: dict[str, Any], codec_key: str) -> list[str]:
    problems = []
    if comp.get(codec_key, {}).get("codec") != "json":
        problems.append(f"{codec_key}.codec is {comp.get(codec_key, {}).get('codec')!r}, not json")
    if comp.get("framing", {}).get("method") != "newline_delimited":
        problems.append(f"framing.method is {comp.get('framing', {}).get('method')!r}, not newline_delimited")
    return problems


def vector_http_problems(cfg: dict[str, Any], serve: Serve) -> list[str]:
    """http sink -> serve --listen http://, serve --forward http:// -> http_server source, acks on."""
    from urllib.parse import urlsplit

    problems: list[str] = []
    sinks = [c for c in cfg["sinks"].values() if c["type"] == "http"]
    sources = [c for c in cfg["sources"].values() if c["type"] == "http_server"]
    if len(sinks) != 1 or len(sources) != 1:
        return ["one http sink and one http_server source expected"]
    sink, source = sinks[0], sources[0]
    listen = serve.listener("http")
    uri = urlsplit(sink["uri"])
    if (uri.scheme, uri.hostname, uri.port) != ("http", listen.host, listen.port):
        problems.append(f"http sink uri {sink['uri']} is not serve's --listen {listen.text}")
    problems += ["http sink: " + p for p in _ndjson(sink, "encoding")]
    if sink.get("acknowledgements", {}).get("enabled") is not True:
        problems.append("http sink: acknowledgements.enabled is not true")
    if sink.get("method", "post") != "post":
        problems.append("http sink: serve takes POST")
    buffer = sink.get("buffer", {})
    if buffer.get("type") != "disk" or buffer.get("when_full", "block") != "block":
        problems.append("http sink: a disk buffer that blocks when full expected")
    if sink.get("request", {}).get("retry_attempts", 1) < 1:
        problems.append("http sink: retries turned off")
    fwd = serve.forward
    if fwd is None or fwd.scheme != "http":
        return problems + ["serve has no --forward http://"]
    if _host_port(source["address"]) != (fwd.host, fwd.port):
        problems.append(f"http_server address {source['address']} is not serve's --forward {fwd.text}")
    if source.get("path", "/") != fwd.path:
        problems.append(f"http_server path {source.get('path', '/')!r} is not the --forward path {fwd.path!r}")
    if source.get("method", "POST") != "POST":
        problems.append("http_server: serve posts")
    if fwd.options.get("format", "ndjson") != "ndjson":
        problems.append("serve must send NDJSON to Vector's http_server (no ?format=json_array)")
    problems += ["http_server: " + p for p in _ndjson(source, "decoding")]
    # The http_server source waits for its sinks only if they acknowledge.
    served = _downstream_sinks(cfg, next(n for n, c in cfg["sources"].items() if c is source))
    problems += [f"sink {n} behind http_server does not acknowledge" for n in served
                 if cfg["sinks"][n].get("acknowledgements", {}).get("enabled") is not True]
    return problems


def _downstream_sinks(cfg: dict[str, Any], start: str) -> set[str]:
    reached = {start}
    changed = True
    while changed:
        changed = False
        for kind in ("transforms", "sinks"):
            for name, comp in cfg.get(kind, {}).items():
                if name not in reached and any(i.split(".")[0] in reached for i in comp.get("inputs", [])):
                    reached.add(name)
                    changed = True
    return {n for n in reached if n in cfg.get("sinks", {})}


def vector_socket_problems(cfg: dict[str, Any], serve: Serve) -> list[str]:
    """socket sink (tcp) -> serve --listen tcp://, serve --forward tcp:// -> socket source (tcp)."""
    sinks = [c for c in cfg["sinks"].values() if c["type"] == "socket"]
    sources = [c for c in cfg["sources"].values() if c["type"] == "socket"]
    if len(sinks) != 1 or len(sources) != 1:
        return ["one socket sink and one socket source expected"]
    sink, source = sinks[0], sources[0]
    problems = []
    listen, fwd = serve.listener("tcp"), serve.forward
    if sink.get("mode") != "tcp" or _host_port(sink["address"]) != (listen.host, listen.port):
        problems.append(f"socket sink {sink.get('mode')} {sink.get('address')} is not serve's --listen {listen.text}")
    if fwd is None or fwd.scheme != "tcp":
        return problems + ["serve has no --forward tcp://"]
    if source.get("mode") != "tcp" or _host_port(source["address"]) != (fwd.host, fwd.port):
        problems.append(f"socket source {source.get('address')} is not serve's --forward {fwd.text}")
    problems += ["socket sink: " + p for p in _ndjson(sink, "encoding")]
    problems += ["socket source: " + p for p in _ndjson(source, "decoding")]
    if sink.get("buffer", {}).get("when_full", "block") != "block":
        problems.append("socket sink: a full buffer must block, not drop")
    return problems


def vector_exec_problems(cfg: dict[str, Any]) -> list[str]:
    """The exec source runs `shellsieve run` without replaying the log and keeps its stderr apart."""
    problems = []
    (name, src), = [(n, c) for n, c in cfg["sources"].items() if c["type"] == "exec"]
    script = src["command"][-1]
    if "shellsieve run" not in script:
        problems.append("the exec command does not run `shellsieve run`")
    if "-n +1" in script or "-n 0" not in script:
        problems.append("the exec command must follow the log from its end (tail -n 0), never -n +1")
    if src.get("include_stderr") is not True:
        problems.append("include_stderr must be true: the filter's logs are kept")
    if src.get("mode") != "streaming" or src.get("streaming", {}).get("respawn_on_exit") is not True:
        problems.append("the exec source must stream and respawn")
    routes = [(n, c) for n, c in cfg.get("transforms", {}).items() if c["type"] == "route" and name in c["inputs"]]
    if len(routes) != 1:
        return problems + ["one route transform on the exec source expected"]
    rname, route = routes[0]
    by_stream = {cond.replace(" ", ""): r for r, cond in route["route"].items()}
    err = by_stream.get('.stream=="stderr"')
    out = by_stream.get('.stream=="stdout"')
    if err is None or out is None:
        return problems + ["the route must split on .stream == \"stderr\" and .stream == \"stdout\""]
    err_sinks = _downstream_sinks_of(cfg, f"{rname}.{err}")
    out_sinks = _downstream_sinks_of(cfg, f"{rname}.{out}")
    if not err_sinks:
        problems.append("the filter's stderr reaches no sink")
    if err_sinks & out_sinks:
        problems.append(f"stderr and events share sinks {sorted(err_sinks & out_sinks)}")
    return problems


def _downstream_sinks_of(cfg: dict[str, Any], output: str) -> set[str]:
    direct = {n for kind in ("transforms", "sinks") for n, c in cfg.get(kind, {}).items()
              if output in c.get("inputs", [])}
    sinks = {n for n in direct if n in cfg.get("sinks", {})}
    for name in direct - sinks:
        sinks |= _downstream_sinks(cfg, name)
    return sinks


def fluent_key_problems(cfg: dict[str, list[dict[str, str]]]) -> list[str]:
    problems = []
    for kind, sections in cfg.items():
        for props in sections:
            plugin = "" if kind == "service" else props.get("name", "")
            allowed = FB_KEYS.get((kind, plugin))
            if allowed is None:
                problems.append(f"{kind} {plugin!r}: plugin not verified")
                continue
            for key, value in props.items():
                if key not in allowed:
                    problems.append(f"{kind} {plugin}: property {key!r} not verified")
                closed = FB_VALUES.get(f"{key}@{kind}.{plugin}") or FB_VALUES.get(key)
                if closed and value.lower() not in closed:
                    problems.append(f"{kind} {plugin}: {key} {value!r} not one of {sorted(closed)}")
    return problems


def _one(cfg: dict[str, list[dict[str, str]]], kind: str, name: str, **match: str) -> dict[str, str]:
    found = [p for p in cfg[kind] if p.get("name") == name and all(p.get(k) == v for k, v in match.items())]
    assert len(found) == 1, f"one {kind} {name} {match} expected, found {len(found)}"
    return found[0]


def _tags(cfg: dict[str, list[dict[str, str]]], serve: Serve) -> set[str]:
    """The tags records carry: inputs' own, what serve gives them, rewrite_tag's new tags."""
    tags = {p["tag"] for p in cfg["input"] if "tag" in p}
    fwd = serve.forward
    if fwd is not None and fwd.scheme == "http" and fwd.path.strip("/"):
        tags.add(fwd.path.strip("/"))  # in_http: the URL path is the tag (plugins/in_http/http_prot.c)
    if fwd is not None and fwd.scheme == "forward":
        tags.add(fwd.options.get("tag", ""))
    tags |= {p["rule"].split()[2] for p in cfg["filter"] if p.get("name") == "rewrite_tag"}
    return tags


def fluent_graph_problems(cfg: dict[str, list[dict[str, str]]], serve: Serve) -> list[str]:
    tags = _tags(cfg, serve)
    return [f"{kind} {p['name']}: Match {p.get('match')!r} matches no tag of {sorted(tags)}"
            for kind in ("filter", "output") for p in cfg[kind] if p.get("match") not in tags]


def fluent_http_problems(cfg: dict[str, list[dict[str, str]]], serve: Serve) -> list[str]:
    """tail -> http output (json_lines, retried) -> serve -> http input (a JSON array, application/json)."""
    problems = []
    out = _one(cfg, "output", "http")
    listen = serve.listener("http")
    if (out.get("host"), int(out.get("port", "80"))) != (listen.host, listen.port):
        problems.append(f"http output {out.get('host')}:{out.get('port')} is not serve's --listen {listen.text}")
    if out.get("format", "").lower() != "json_lines":
        problems.append(f"http output Format is {out.get('format')!r}, not json_lines")
    if out.get("retry_limit", "1").lower() not in ("no_limits", "false", "off"):
        problems.append("http output: Retry_Limit must be no_limits")
    fwd = serve.forward
    inp = _one(cfg, "input", "http")
    if fwd is None or fwd.scheme != "http":
        return problems + ["serve has no --forward http://"]
    if (inp.get("listen"), int(inp.get("port", "9880"))) != (fwd.host, fwd.port):
        problems.append(f"http input {inp.get('listen')}:{inp.get('port')} is not serve's --forward {fwd.text}")
    if fwd.options.get("format") != "json_array":
        problems.append("serve must post a JSON array to Fluent Bit's http input (?format=json_array)")
    return problems + _tail_problems(cfg)


def fluent_forward_problems(cfg: dict[str, list[dict[str, str]]], serve: Serve) -> list[str]:
    """tail -> forward output (Require_ack_response) -> serve -> forward input."""
    problems = []
    out = _one(cfg, "output", "forward")
    listen = serve.listener("forward")
    if (out.get("host"), int(out.get("port", "24224"))) != (listen.host, listen.port):
        problems.append(f"forward output {out.get('host')}:{out.get('port')} is not serve's --listen {listen.text}")
    if out.get("require_ack_response", "false").lower() not in ("true", "on"):
        problems.append("forward output: Require_ack_response must be true")
    if out.get("retry_limit", "1").lower() not in ("no_limits", "false", "off"):
        problems.append("forward output: Retry_Limit must be no_limits")
    fwd = serve.forward
    inp = _one(cfg, "input", "forward")
    if fwd is None or fwd.scheme != "forward":
        return problems + ["serve has no --forward forward://"]
    if (inp.get("listen"), int(inp.get("port", "24224"))) != (fwd.host, fwd.port):
        problems.append(f"forward input {inp.get('listen')}:{inp.get('port')} is not serve's --forward {fwd.text}")
    return problems + _tail_problems(cfg)


def _tail_problems(cfg: dict[str, list[dict[str, str]]]) -> list[str]:
    tail = _one(cfg, "input", "tail")
    problems = []
    if "db" not in tail:
        problems.append("tail: a DB keeps the read position across restarts")
    if tail.get("storage.type") != "filesystem" or "storage.path" not in cfg["service"][0]:
        problems.append("tail: storage.type filesystem (and service storage.path) keeps chunks across restarts")
    return problems


def read_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A systemd unit: section -> key -> values (a key may repeat)."""
    out: dict[str, dict[str, list[str]]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            out[section] = {}
            continue
        key, _, value = line.partition("=")
        out[section].setdefault(key, []).append(value)
    return out
