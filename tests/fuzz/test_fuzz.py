"""The fuzz targets in the default run: each over its seed corpus, then a short coverage-guided run
(atheris in a child process, 1-2 s per target; hypothesis in process where atheris is not
installed), and the inputs the fuzzers found, as regression tests.

Run them longer with `python tests/fuzz/run_atheris.py all --seconds 300` (see run_atheris.py).
"""

from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # targets.py is imported by name here and by run_atheris.py alike

from targets import TARGETS, _NullLog, _shipped, seeds  # noqa: E402  after the sys.path insert above
HAVE_ATHERIS = importlib.util.find_spec("atheris") is not None
SECONDS = 1  # per target in the default run: libFuzzer stops after 1-2 s; 14 targets in ~30 s


@pytest.mark.parametrize("name", list(TARGETS))
def test_seed_corpus(name: str) -> None:
    """Every seed of the target holds the target's invariants."""
    corpus = seeds(name)
    assert corpus, f"no seeds for {name}"
    for seed in corpus:
        TARGETS[name](seed)


@pytest.fixture(scope="module")
def atheris_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One `run_atheris.py all` for the module: shellsieve instrumented once, each target forked from it."""
    out = tmp_path_factory.mktemp("atheris")
    cmd = [sys.executable, str(HERE / "run_atheris.py"), "all", "--seconds", str(SECONDS), "--quiet",
           "--corpus", str(out / "corpus"), "--artifacts", str(out / "artifacts")]
    subprocess.run(cmd, capture_output=True, timeout=30 * len(TARGETS), cwd=out)
    return out / "artifacts"


@pytest.mark.skipif(not HAVE_ATHERIS, reason="atheris not installed: test_hypothesis runs instead")
@pytest.mark.parametrize("name", list(TARGETS))
def test_atheris(name: str, atheris_run: Path) -> None:
    """A short atheris run of the target from its seed corpus finds no crash."""
    summary = json.loads((atheris_run / "summary.json").read_text())[name]
    log = (atheris_run / f"{name}.log").read_text(errors="replace").splitlines()
    detail = "\n".join(x for x in log if not x.startswith("INFO: Instrumenting"))[-6000:]
    crashes = sorted((atheris_run / name).glob("*"))
    found = crashes[0].read_bytes()[:2000] if crashes else None
    assert summary["exit"] == 0 and not crashes, f"{name} crashed on {found!r}:\n{detail}"


@pytest.mark.skipif(HAVE_ATHERIS, reason="atheris installed: test_atheris runs instead")
@pytest.mark.parametrize("name", list(TARGETS))
def test_hypothesis(name: str) -> None:
    """Where atheris cannot be installed: random bytes, and seeds with bytes spliced in, hold the invariants."""
    from hypothesis import given, settings, strategies as st

    corpus = seeds(name)
    spliced = st.tuples(st.sampled_from(corpus), st.integers(0, 4096), st.integers(0, 64), st.binary(max_size=64)).map(
        lambda t: t[0][: t[1]] + t[3] + t[0][t[1] + t[2]:])

    @settings(max_examples=300, deadline=None, database=None, derandomize=True)
    @given(st.one_of(st.binary(max_size=4096), spliced))
    def run(data: bytes) -> None:
        TARGETS[name](data)

    run()


# -- what the fuzzers found -----------------------------------------------------------------------

def _filter(data: bytes) -> list[bytes]:
    from shellsieve.run.loop import run_filter
    from shellsieve.settings import Settings

    out = io.BytesIO()
    run_filter(_shipped(), Settings(stats_interval_s=0), io.BytesIO(data), out, _NullLog())
    return out.getvalue().splitlines()


class TestFound:
    """Inputs the fuzzers found that crashed a decoder, minimised; each held by its target from now on."""

    # An audit header's seconds are whatever digits the line holds: year 540678, or past float range.
    FAR_AUDIT = (b'type=SYSCALL msg=audit(17000001002123:4567): arch=c000003e syscall=59 success=yes pid=7 ppid=1 '
                 b'comm="sh" exe="/bin/sh"\ntype=EOE msg=audit(17000001002123:4567):\n')
    INF_AUDIT = b"type=EXECVE msg=audit(" + b"9" * 400 + b".1:1): argc=1 a0=\"sh\"\n"

    @pytest.mark.parametrize("line", [FAR_AUDIT, INF_AUDIT])
    def test_audit_time_out_of_range(self, line: bytes) -> None:
        """An audit record dated past year 9999 (or past float range) is decoded without a @timestamp."""
        TARGETS["auditd_record"](line)
        TARGETS["auditd_assembly"](line)
        out = _filter(line)
        assert len(out) == line.count(b"\n") and all(x.startswith(b'{"message":') for x in out)

    def test_wazuh_audit_time_out_of_range(self) -> None:
        """A Wazuh alert whose full_log holds such a record is decoded too."""
        doc = (b'{"full_log":"type=SYSCALL msg=audit(17778000004600:1002): arch=c000003e syscall=59 pid=7",'
               b'"decoder":{"name":"auditd"}}')
        TARGETS["wazuh_json"](doc)
        assert _filter(doc + b"\n") == [doc]

    @pytest.mark.parametrize("query", ['process where process.name <=+ "x"', 'process where process.pid < -"a"'])
    def test_eql_sign_on_string(self, query: str) -> None:
        """eql's parser fails with AttributeError on a sign before a string: an UnsupportedError, not a crash."""
        from shellsieve.errors import UnsupportedError
        from shellsieve.rules.eql import parse_eql

        with pytest.raises(UnsupportedError, match="eql parser failed"):
            parse_eql(query)
        TARGETS["eql"](query.encode())

    @pytest.mark.parametrize("field", ['threat = ["TA0002"]', 'risk_score = "high"', "risk_score = inf",
                                       "references = 7", "query = 5"])
    def test_elastic_field_of_wrong_type(self, field: str, tmp_path: Path) -> None:
        """A detection-rules field of the wrong type is a diagnostic naming the rule, not an exception."""
        from shellsieve.rules.discover import load_rules

        lines = {"rule_id": '"r1"', "name": '"n"', "type": '"eql"', "language": '"eql"',
                 "query": "'process where process.name == \"sh\"'"}
        key = field.split(" ", 1)[0]
        lines[key] = field.split(" = ", 1)[1]
        path = tmp_path / "rule.toml"
        path.write_text("[rule]\n" + "".join(f"{k} = {v}\n" for k, v in lines.items()))
        rules, diags = load_rules([path])
        assert rules == [] and [(d.severity, d.rule_id) for d in diags] == [("error", "r1")]

    @pytest.mark.parametrize("doc", [b'{"Event":{"System":1}}', b'{"winlog":[1]}',
                                     b'{"winlog":{"event_data":{"Image":7,"ParentImage":["a"]}}}'])
    def test_sysmon_json_parts_of_other_types(self, doc: bytes) -> None:
        """Under `--format sysmon` any JSON object is read as Sysmon: parts of other types are absent."""
        from shellsieve.run.loop import run_filter
        from shellsieve.settings import Settings

        TARGETS["sysmon_json"](doc)
        out = io.BytesIO()
        run_filter(_shipped(), Settings(stats_interval_s=0, input_format="sysmon"), io.BytesIO(doc + b"\n"), out,
                   _NullLog())
        assert out.getvalue() == doc + b"\n"

    def test_field_name_a_view_cannot_hold(self, tmp_path: Path) -> None:
        """A rule field holding `\\` or `"` (msgspec cannot rename to it) is refused at compile with a
        diagnostic naming the rule, and the other rules still compile."""
        from shellsieve.compile.ruleset import compile_rules
        from shellsieve.rules.discover import load_rules

        path = tmp_path / "rules.yml"
        bad, good = "00000000-0000-4000-8000-00000000000a", "00000000-0000-4000-8000-00000000000b"
        source = "logsource: {category: process_creation, product: linux}\n"
        path.write_text(f"title: a\nid: {bad}\n{source}detection:\n  sel:\n    Parent\\Image|endswith: /apache2\n"
                        f"  condition: sel\n---\ntitle: b\nid: {good}\n{source}detection:\n  sel:\n"
                        "    Image|endswith: /nc\n  condition: sel\n")
        rules, _ = load_rules([path])
        assert [r.id for r in rules] == [bad, good]
        ruleset, diags = compile_rules(rules)
        assert [r.rule.id for r in ruleset.rules] == [good]
        assert [(d.rule_id, d.construct) for d in diags if d.severity == "error"] == [(bad, "Parent\\Image")]
        TARGETS["sigma_rules"](path.read_bytes())

    def test_eql_by_counts_differ(self) -> None:
        """A sequence whose first step has more `by` fields than the next makes eql's error path index
        past its list (IndexError): an UnsupportedError."""
        from shellsieve.errors import UnsupportedError
        from shellsieve.rules.eql import parse_eql

        query = "sequence [process where a == 1] by a, b [process where a == 1] by a"
        with pytest.raises(UnsupportedError, match="IndexError"):
            parse_eql(query)
        TARGETS["eql"](query.encode())

    @pytest.mark.parametrize("text", ["title: x\ndate: 2026-13-01\n", "title: x\ndate: 2026-02-30\n"])
    def test_sigma_yaml_date_out_of_range(self, text: str, tmp_path: Path) -> None:
        """A YAML date no datetime holds (PyYAML raises ValueError, not a YAMLError) is an invalid-YAML diagnostic."""
        from shellsieve.rules.discover import load_rules

        path = tmp_path / "rule.yml"
        path.write_text(text)
        rules, diags = load_rules([path])
        assert rules == [] and [(d.severity, d.location.line) for d in diags] == [("error", 1)]
        assert "invalid YAML" in diags[0].message
        TARGETS["sigma_rules"](text.encode())

    def test_eql_cidrmatch_not_a_network(self, tmp_path: Path) -> None:
        """cidrmatch() with a value that is not a network (a leading zero) is refused when the rule loads,
        not by ValueError out of compile_rules."""
        from shellsieve.compile.ruleset import compile_rules
        from shellsieve.rules.discover import load_rules

        path = tmp_path / "rule.toml"
        path.write_text('[rule]\nrule_id = "r1"\nname = "n"\ntype = "eql"\nlanguage = "eql"\n'
                        "query = 'network where cidrmatch(destination.ip, \"10.0.0.0/8\", \"063.0.0.0/8\")'\n")
        rules, diags = load_rules([path])
        assert rules == [] and [(d.rule_id, d.construct) for d in diags] == [("r1", "063.0.0.0/8")]
        compile_rules(rules)
        TARGETS["elastic_rules"](path.read_bytes())

    @pytest.mark.parametrize("runs", ["101", "62222222222222"])
    def test_eql_runs_bounded(self, runs: str) -> None:
        """`with runs=N` past 100 is refused before eql copies the step N times (a MemoryError, or
        gigabytes, before)."""
        from shellsieve.errors import UnsupportedError
        from shellsieve.rules.eql import parse_eql

        query = f'sequence by host.id [process where process.name == "x"] with runs={runs}'
        with pytest.raises(UnsupportedError, match="repeated more than 100"):
            parse_eql(query)
        assert len(parse_eql(query.replace(runs, "100")).steps) == 100  # type: ignore[union-attr]
        TARGETS["eql"](query.encode())

    @pytest.mark.parametrize("call", ["cidrmatch()", "CIDRMATCH()"])
    def test_eql_function_without_arguments(self, call: str) -> None:
        """cidrmatch() with no argument (eql checks no arity for it) is an UnsupportedError, not IndexError
        from the translator."""
        from shellsieve.errors import UnsupportedError
        from shellsieve.rules.eql import parse_eql

        query = f"network where not {call}"
        with pytest.raises(UnsupportedError, match="first argument"):
            parse_eql(query)
        TARGETS["eql"](query.encode())

    @pytest.mark.parametrize("query", ["a:1 and " + "(" * 300 + "b:2" + ")" * 300, "not " * 1200 + "a:1"])
    def test_kql_nesting_bounded(self, query: str) -> None:
        """Parentheses or `not`s nested past 100 are an UnsupportedError, not RecursionError out of the
        recursive-descent parser; 100 levels still parse."""
        from shellsieve.errors import UnsupportedError
        from shellsieve.rules.kql import parse_kql

        with pytest.raises(UnsupportedError, match="nested more than 100"):
            parse_kql(query)
        parse_kql("(" * 100 + "b:2" + ")" * 100)
        parse_kql("not " * 100 + "a:1")
        TARGETS["kql"](query.encode())
