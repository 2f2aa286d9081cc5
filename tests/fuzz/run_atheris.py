"""Run the fuzz targets of targets.py with atheris (libFuzzer, coverage-guided on shellsieve's code).

    python tests/fuzz/run_atheris.py --list
    python tests/fuzz/run_atheris.py all --seconds 300             # every target, 5 minutes each, one at a time
    python tests/fuzz/run_atheris.py filter --seconds 600          # one target
    python tests/fuzz/run_atheris.py kql --seconds 3600 --corpus fuzz-corpus/kql   # keep what it learns
    python tests/fuzz/run_atheris.py matcher -- -max_len=65536     # after `--`: any libFuzzer flag
    python tests/fuzz/run_atheris.py view fuzz-artifacts/view/crash-<sha1>        # replay one input

Each target starts from its seed corpus (targets.seeds: literals of the tests, examples/, patterns/)
in a temporary folder, or in `--corpus` (with `all`: one subfolder per target), which libFuzzer grows.
A crash ends that target: libFuzzer prints the traceback and writes the input to
`<artifacts>/<target>/crash-<sha1>` (default artifacts: fuzz-artifacts/ in the current directory).
With `all`, `--quiet` sends each target's libFuzzer output to `<artifacts>/<target>.log`, and
`<artifacts>/summary.json` holds each target's exit status and time. Exit status: 0 when every
target ran clean, else 1. atheris.Fuzz() ends its process when the run is over, so `all` imports
and instruments shellsieve once and fuzzes each target in a forked child.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _import_targets() -> Any:
    """targets.py with shellsieve instrumented for coverage (what decides which inputs libFuzzer keeps)."""
    import atheris

    sys.path.insert(0, str(HERE))
    with atheris.instrument_imports(include=["shellsieve"]):
        import targets
    return targets


def _fuzz(targets: Any, name: str, args: argparse.Namespace, extra: list[str]) -> None:
    """Fuzz one target in this process; does not return (atheris exits)."""
    import atheris

    replay = [str(x) for x in args.inputs] + [a for a in extra if not a.startswith("-")]
    flags = [a for a in extra if a.startswith("-")]
    if not replay:
        corpus = args.corpus / name if args.corpus and args.target == "all" else args.corpus
        if corpus is None:
            corpus = Path(tempfile.mkdtemp(prefix=f"shellsieve-fuzz-{name}-"))
        corpus.mkdir(parents=True, exist_ok=True)
        for i, seed in enumerate(targets.seeds(name, limit=1000)):
            (corpus / f"seed-{i:04d}").write_bytes(seed)
        artifacts = args.artifacts.resolve() / name
        artifacts.mkdir(parents=True, exist_ok=True)
        flags = [f"-max_total_time={max(1, round(args.seconds))}", f"-artifact_prefix={artifacts}/",
                 "-print_final_stats=1", *([f"-runs={args.runs}"] if args.runs is not None else []), *flags]
        replay = [str(corpus)]
    atheris.Setup([sys.argv[0], *flags, *replay], targets.TARGETS[name])
    atheris.Fuzz()


def _fuzz_all(targets: Any, args: argparse.Namespace, extra: list[str]) -> int:
    targets.prepare()  # the shipped ruleset compiled once, before the children fork
    out = args.artifacts.resolve()
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, dict[str, Any]] = {}
    for name in targets.TARGETS:
        started = time.monotonic()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            try:
                if args.quiet:
                    log = os.open(out / f"{name}.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                    os.dup2(log, 1)
                    os.dup2(log, 2)
                _fuzz(targets, name, args, extra)
            except SystemExit:
                # atheris ends a crashing run with sys.exit: the interpreter's exit runs libFuzzer's
                # exit handler, which writes the crashing input. os._exit would skip it.
                raise
            except BaseException:
                traceback.print_exc()
            os._exit(70)  # setting up the run failed
        rc = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        crashes = sorted(p.name for p in (out / name).glob("*")) if (out / name).is_dir() else []
        summary[name] = {"exit": rc, "seconds": round(time.monotonic() - started, 1), "crashes": crashes}
        print(f"== {name}: exit {rc} after {summary[name]['seconds']} s", file=sys.stderr, flush=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    failed = [n for n, s in summary.items() if s["exit"] or s["crashes"]]
    if failed:
        print(f"== crashed: {', '.join(failed)} (inputs under {out})", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", nargs="?", help="a target name, or `all`")
    p.add_argument("inputs", nargs="*", type=Path, help="files to run the target on once (replay), not fuzz")
    p.add_argument("--seconds", type=float, default=60.0, help="time per target (default 60)")
    p.add_argument("--runs", type=int, default=None, help="stop a target after this many inputs")
    p.add_argument("--corpus", type=Path, default=None, help="corpus folder to start from and grow")
    p.add_argument("--artifacts", type=Path, default=Path("fuzz-artifacts"), help="where crashing inputs go")
    p.add_argument("--quiet", action="store_true", help="with `all`: libFuzzer output to <artifacts>/<target>.log")
    p.add_argument("--list", action="store_true", help="list the targets")
    argv = sys.argv[1:] if argv is None else argv
    cut = argv.index("--") if "--" in argv else len(argv)
    extra = argv[cut + 1 :]  # libFuzzer flags
    args = p.parse_args(argv[:cut])
    if args.list or not args.target:
        sys.path.insert(0, str(HERE))
        from targets import TARGETS

        print("\n".join(TARGETS))
        return 0
    targets = _import_targets()
    if args.target == "all":
        return _fuzz_all(targets, args, extra)
    if args.target not in targets.TARGETS:
        p.error(f"unknown target {args.target!r}; --list shows them")
    _fuzz(targets, args.target, args, extra)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
