"""Every shipped deploy/ config loads, uses only option names read in the shipper's source, and agrees
with the `shellsieve serve` command it names on addresses, framing, codecs and acknowledgements."""

from __future__ import annotations

import copy
import shlex
from pathlib import Path

import pytest

from shellsieve.cli import parser

from deploy_configs import (DEPLOY, ROOT, fluent_forward_problems, fluent_graph_problems, fluent_http_problems,
                            fluent_key_problems, load_fluent_classic, load_fluent_yaml, load_vector, read_unit,
                            serve_line, Serve, vector_exec_problems, vector_graph_problems, vector_http_problems,
                            vector_key_problems, vector_socket_problems)

VECTOR = DEPLOY / "vector"
FLUENT = DEPLOY / "fluent-bit"
UNIT = DEPLOY / "systemd" / "shellsieve.service"
VECTOR_CONFIGS = sorted(VECTOR.glob("*.toml"))
FLUENT_CONFIGS = sorted(FLUENT.glob("*.yaml")) + sorted(FLUENT.glob("*.conf"))


def _fluent(path: Path) -> dict[str, list[dict[str, str]]]:
    return load_fluent_yaml(path) if path.suffix == ".yaml" else load_fluent_classic(path)


class TestShippedSet:
    def test_every_config_is_checked(self) -> None:
        """deploy/ holds exactly the configs these tests know, so a new one cannot go unchecked."""
        assert [p.name for p in VECTOR_CONFIGS] == ["vector-exec.toml", "vector-socket.toml", "vector.toml"]
        assert sorted(p.name for p in FLUENT_CONFIGS) == ["fluent-bit-forward.conf", "fluent-bit-forward.yaml",
                                                          "fluent-bit.conf", "fluent-bit.yaml"]

    def test_top_level_vector_toml_is_the_main_topology(self) -> None:
        """The repository's vector.toml is the HTTP topology of deploy/, not a second copy."""
        top = ROOT / "vector.toml"
        assert top.is_symlink() and top.resolve() == (VECTOR / "vector.toml").resolve()


class TestVector:
    @pytest.mark.parametrize("path", VECTOR_CONFIGS, ids=lambda p: p.name)
    def test_only_verified_options(self, path: Path) -> None:
        """Every option name and closed value is one read in Vector's source."""
        assert vector_key_problems(load_vector(path)) == []

    @pytest.mark.parametrize("path", VECTOR_CONFIGS, ids=lambda p: p.name)
    def test_inputs_are_defined(self, path: Path) -> None:
        """Every `inputs` entry names a defined source, transform or route output."""
        assert vector_graph_problems(load_vector(path)) == []

    def test_http_pair_agrees_with_serve(self) -> None:
        """http sink -> serve --listen, serve --forward -> http_server; json + newline; acks and a blocking disk
        buffer."""
        path = VECTOR / "vector.toml"
        assert vector_http_problems(load_vector(path), serve_line(path)) == []

    def test_socket_pair_agrees_with_serve(self) -> None:
        """socket sink (tcp) -> serve --listen tcp://, serve --forward tcp:// -> socket source; json + newline."""
        path = VECTOR / "vector-socket.toml"
        assert vector_socket_problems(load_vector(path), serve_line(path)) == []

    def test_exec_variant_does_not_replay_and_keeps_stderr(self) -> None:
        """The exec command follows from the end (no -n +1), and the filter's stderr has a sink of its own."""
        assert vector_exec_problems(load_vector(VECTOR / "vector-exec.toml")) == []


class TestVectorChecksCanFail:
    """The checks above catch the mistakes they are for (each mutation must be reported)."""

    def test_port_mismatch(self) -> None:
        """A sink port that is not serve's --listen port is reported."""
        path = VECTOR / "vector.toml"
        cfg = load_vector(path)
        cfg["sinks"]["shellsieve"]["uri"] = "http://127.0.0.1:9699/"
        assert any("is not serve's --listen" in p for p in vector_http_problems(cfg, serve_line(path)))

    def test_forward_mismatch(self) -> None:
        """serve forwarding to another port than the http_server source listens on is reported."""
        path = VECTOR / "vector.toml"
        serve = Serve(["shellsieve", "serve", "--listen", "http://127.0.0.1:9600",
                       "--forward", "http://127.0.0.1:9701/"])
        assert any("is not serve's --forward" in p for p in vector_http_problems(load_vector(path), serve))

    def test_acks_off_and_codec(self) -> None:
        """Acknowledgements off, or a codec other than json, is reported."""
        path = VECTOR / "vector.toml"
        cfg = load_vector(path)
        cfg["sinks"]["shellsieve"]["acknowledgements"]["enabled"] = False
        cfg["sources"]["shellsieve_out"]["decoding"]["codec"] = "bytes"
        problems = vector_http_problems(cfg, serve_line(path))
        assert any("acknowledgements" in p for p in problems) and any("not json" in p for p in problems)

    def test_unknown_option_and_dangling_input(self) -> None:
        """A misspelt option and an input naming nothing are reported."""
        cfg = load_vector(VECTOR / "vector.toml")
        cfg["sinks"]["shellsieve"]["acknowledgement"] = {"enabled": True}
        cfg["sinks"]["alerts_file"]["inputs"] = ["alert"]
        assert vector_key_problems(cfg) and vector_graph_problems(cfg)

    def test_replay_and_lost_stderr(self) -> None:
        """`tail -n +1` and stderr merged into the events are reported."""
        cfg = load_vector(VECTOR / "vector-exec.toml")
        bad = copy.deepcopy(cfg)
        command = bad["sources"]["shellsieve"]["command"]
        command[-1] = command[-1].replace("-n 0", "-n +1")
        assert any("-n +1" in p for p in vector_exec_problems(bad))
        bad = copy.deepcopy(cfg)
        bad["sinks"]["filter_logs"]["inputs"] = ["events"]
        assert vector_exec_problems(bad)


class TestFluentBit:
    @pytest.mark.parametrize("path", FLUENT_CONFIGS, ids=lambda p: p.name)
    def test_only_verified_properties(self, path: Path) -> None:
        """Every property name and closed value is one read in Fluent Bit's source."""
        assert fluent_key_problems(_fluent(path)) == []

    @pytest.mark.parametrize("path", FLUENT_CONFIGS, ids=lambda p: p.name)
    def test_every_match_has_records(self, path: Path) -> None:
        """Every filter and output Match names a tag some input, serve or rewrite_tag gives records."""
        assert fluent_graph_problems(_fluent(path), serve_line(path)) == []

    @pytest.mark.parametrize("name", ["fluent-bit", "fluent-bit-forward"])
    def test_yaml_and_classic_are_twins(self, name: str) -> None:
        """The YAML and classic configs hold the same sections, properties and serve command."""
        yaml_cfg, classic = load_fluent_yaml(FLUENT / f"{name}.yaml"), load_fluent_classic(FLUENT / f"{name}.conf")
        assert yaml_cfg == classic
        assert serve_line(FLUENT / f"{name}.yaml").argv == serve_line(FLUENT / f"{name}.conf").argv

    @pytest.mark.parametrize("suffix", [".yaml", ".conf"])
    def test_http_pair_agrees_with_serve(self, suffix: str) -> None:
        """http output (json_lines, unlimited retries) -> serve --listen; serve --forward (a JSON array) -> http
        input."""
        path = FLUENT / f"fluent-bit{suffix}"
        assert fluent_http_problems(_fluent(path), serve_line(path)) == []

    @pytest.mark.parametrize("suffix", [".yaml", ".conf"])
    def test_forward_pair_agrees_with_serve(self, suffix: str) -> None:
        """forward output with Require_ack_response -> serve --listen forward://; serve --forward -> forward input."""
        path = FLUENT / f"fluent-bit-forward{suffix}"
        assert fluent_forward_problems(_fluent(path), serve_line(path)) == []

    def test_checks_can_fail(self) -> None:
        """A wrong port, Format json, no ack and an NDJSON forward to in_http are each reported."""
        path = FLUENT / "fluent-bit.conf"
        cfg = _fluent(path)
        out = next(p for p in cfg["output"] if p["name"] == "http")
        out["port"], out["format"] = "9601", "json"
        serve = Serve(["shellsieve", "serve", "--listen", "http://127.0.0.1:9600",
                       "--forward", "http://127.0.0.1:9880/shellsieve"])
        problems = fluent_http_problems(cfg, serve)
        assert len(problems) == 3, problems
        fwd_path = FLUENT / "fluent-bit-forward.yaml"
        fcfg = _fluent(fwd_path)
        next(p for p in fcfg["output"] if p["name"] == "forward")["require_ack_response"] = "false"
        assert fluent_forward_problems(fcfg, serve_line(fwd_path)) == [
            "forward output: Require_ack_response must be true"]
        fcfg["output"][0]["match"] = "nothing"
        assert fluent_graph_problems(fcfg, serve_line(fwd_path))


class TestSystemdUnit:
    def test_runs_the_main_topologys_serve(self) -> None:
        """ExecStart is `shellsieve serve` with the listen and forward of deploy/vector/vector.toml."""
        unit = read_unit(UNIT)
        (exec_start,) = unit["Service"]["ExecStart"]
        argv = shlex.split(exec_start)
        assert argv[0].endswith("/shellsieve") and argv[1] == "serve"
        serve = Serve(argv)
        main = serve_line(VECTOR / "vector.toml")
        assert serve.listen == main.listen and serve.forward == main.forward

    def test_stops_after_the_drain_and_is_confined(self) -> None:
        """SIGTERM, a stop timeout longer than --drain-timeout, restart on failure, its own user, hardening."""
        service = {k: v[-1] for k, v in read_unit(UNIT)["Service"].items()}
        drain = float(Serve(shlex.split(service["ExecStart"])).options["--drain-timeout"])
        assert service["KillSignal"] == "SIGTERM" and float(service["TimeoutStopSec"]) > drain
        assert service["Restart"] == "on-failure"
        assert service["User"] not in ("", "root") and service["DynamicUser"] == "yes"
        assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
        assert service["CapabilityBoundingSet"] == ""


class TestServeCommands:
    # the exec variant runs `shellsieve run` under Vector, not serve
    @pytest.mark.parametrize("path", [p for p in [*VECTOR_CONFIGS, *FLUENT_CONFIGS] if p.name != "vector-exec.toml"],
                             ids=lambda p: p.name)
    def test_the_named_serve_command_is_one_serve_accepts(self, path: Path) -> None:
        """Each config's `# serve:` command parses with serve's own option parser (addresses,
        per-listener options, numbers in range), so a user can paste it as it is."""
        argv = serve_line(path).argv
        args = parser().parse_args(argv[1:])
        assert args.command == "serve" and args.listen

    def test_the_unit_runs_a_command_serve_accepts(self) -> None:
        """The systemd unit's ExecStart (without the environment's extra options) parses too."""
        (exec_start,) = read_unit(UNIT)["Service"]["ExecStart"]
        argv = [a for a in shlex.split(exec_start) if not a.startswith("$")]
        args = parser().parse_args(argv[1:])
        assert args.command == "serve" and args.drain_timeout_s == 30.0


class TestNatsTier:
    """deploy/nats/: the shippers' configs use verified option names, and the StatefulSet, the stream
    and the consumer agree on the partitions (the streams themselves are loaded by a real server in
    tests/consume/)."""

    NATS = DEPLOY / "nats"

    def test_vector_options_and_graph(self) -> None:
        """The nats sink (jetstream) and source (a durable consumer) use only options read in Vector's source."""
        cfg = load_vector(self.NATS / "vector-nats.toml")
        assert vector_key_problems(cfg) == [] and vector_graph_problems(cfg) == []
        sink = cfg["sinks"]["events"]
        assert sink["jetstream"] is True and sink["subject"].startswith("events.")
        assert sink["acknowledgements"]["enabled"] is True

    def test_fluent_bit_options(self) -> None:
        """The nats output: verified properties, its tag (the subject) events.<host>."""
        cfg = load_fluent_yaml(self.NATS / "fluent-bit-nats.yaml")
        assert fluent_key_problems(cfg) == []
        assert cfg["input"][0]["tag"].startswith("events.") and cfg["output"][0]["match"] == "events.*"

    def test_statefulset_stream_and_consumer_agree(self) -> None:
        """Pod ordinal = partition: replicas = --partitions = the stream's partition(N); the command parses."""
        import json

        import yaml

        docs = list(yaml.safe_load_all((self.NATS / "shellsieve-consume.yaml").read_text()))
        (sts,) = [d for d in docs if d["kind"] == "StatefulSet"]
        (container,) = sts["spec"]["template"]["spec"]["containers"]
        args = parser().parse_args(container["command"][1:])
        assert args.command == "consume" and args.partition == "auto"
        stream = json.loads((self.NATS / "events-stream.json").read_text())
        assert f"partition({args.partitions},1)" in stream["subject_transform"]["dest"]
        assert sts["spec"]["replicas"] == args.partitions
        consumer = json.loads((self.NATS / "consumer.json").read_text())
        assert consumer["filter_subject"] == "events.p.0.>" and consumer["ack_policy"] in ("all", "explicit")
