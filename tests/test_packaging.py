"""Packaging and deploy files (issue 22, item 5): the systemd unit verifies, the wheel and the
Dockerfile's install run in a fresh venv, the Kubernetes probes point at --metrics-addr."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import yaml

from shellsieve.cli import parser

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "systemd" / "shellsieve.service"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
POD = DEPLOY / "kubernetes" / "shellsieve-sidecar.yaml"


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            word, _, rest = pending.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            pending = ""
    return out


def _fresh_venv(where: Path) -> Path:
    venv.create(where, with_pip=True)
    return where / "bin"


class TestSystemdUnit:
    def test_verifies(self, tmp_path: Path) -> None:
        """`systemd-analyze verify` says nothing: every key known, every value valid. ExecStart must
        name an executable file, so the copy runs this venv's shellsieve."""
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            pytest.skip("systemd-analyze is not installed (Debian package systemd)")
        exe = Path(sys.executable).parent / "shellsieve"
        unit = tmp_path / "shellsieve.service"
        unit.write_text(UNIT.read_text().replace("/opt/shellsieve/bin/shellsieve", str(exe)))
        done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), done.stdout + done.stderr

    def test_hardened_and_reloadable(self) -> None:
        text = UNIT.read_text()
        for line in ("DynamicUser=yes", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes",
                     "PrivateTmp=yes", "Restart=on-failure", "ExecReload=/bin/kill -HUP $MAINPID",
                     "CacheDirectory=shellsieve"):
            assert f"\n{line}\n" in text, line
        assert any(ln.startswith("MemoryMax=") for ln in text.splitlines())
        (start,) = [ln for ln in text.splitlines() if ln.startswith("ExecStart=")]
        args = parser().parse_args([a for a in shlex.split(start.removeprefix("ExecStart="))[1:]
                                    if not a.startswith("$")])
        assert args.metrics_addr is not None


class TestKubernetes:
    def test_probes_point_at_the_metrics_port(self) -> None:
        (deployment,) = list(yaml.safe_load_all(POD.read_text()))
        containers = {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}
        assert set(containers) == {"vector", "shellsieve"}
        side = containers["shellsieve"]
        args = parser().parse_args(side["args"])
        assert args.command == "serve"
        ports = {p["name"]: p["containerPort"] for p in side["ports"]}
        assert args.metrics_addr[1] == ports["metrics"]
        assert side["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
        assert side["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace > args.drain_timeout_s


class TestDockerfile:
    def test_shape(self) -> None:
        steps = _instructions(DOCKERFILE)
        assert steps[0] == ("FROM", "python:3.11-slim")
        users = [arg for word, arg in steps if word == "USER"]
        assert users and users[-1] not in ("root", "0")
        assert json.loads(dict(steps)["ENTRYPOINT"]) == ["shellsieve"]
        health = dict(steps)["HEALTHCHECK"]
        cmd = json.loads(dict(steps)["CMD"])
        port = parser().parse_args(cmd).metrics_addr[1]
        assert f"127.0.0.1:{port}/healthz" in health

    @pytest.mark.slow
    def test_install_and_entrypoint_run_in_a_fresh_venv(self, tmp_path: Path) -> None:
        """The COPYs, then every `pip install` RUN, then ENTRYPOINT --version, in a venv for the image."""
        src = tmp_path / "src"
        src.mkdir()
        bindir = _fresh_venv(tmp_path / "venv")
        ran = 0
        for word, arg in _instructions(DOCKERFILE):
            if word == "COPY":
                *froms, dest = arg.split()
                target = src / dest if dest != "./" else src
                for name in froms:
                    source = ROOT / name
                    if source.is_dir():
                        shutil.copytree(source, target, dirs_exist_ok=True)
                    else:
                        shutil.copy(source, src / source.name)
            elif word == "RUN" and arg.startswith("pip install"):
                argv = shlex.split(arg)
                subprocess.run([str(bindir / "pip"), *argv[1:]], cwd=src, check=True, timeout=600,
                               capture_output=True)
                ran += 1
        assert ran == 1
        entry = json.loads(dict(_instructions(DOCKERFILE))["ENTRYPOINT"])
        done = subprocess.run([str(bindir / entry[0]), *entry[1:], "--version"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and done.stdout.startswith("shellsieve "), done.stderr


@pytest.mark.slow
def test_wheel_installs_and_filters(tmp_path: Path) -> None:
    """`pip wheel .` then the wheel alone in a fresh venv: --version, and `run` tags the example events."""
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(ROOT), "-w", str(wheels)],
                   check=True, timeout=600, capture_output=True)
    (wheel,) = wheels.glob("shellsieve-*.whl")
    bindir = _fresh_venv(tmp_path / "venv")
    subprocess.run([str(bindir / "pip"), "install", "-q", str(wheel)], check=True, timeout=600, capture_output=True)
    exe = str(bindir / "shellsieve")
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("shellsieve "), version.stderr
    events = (ROOT / "examples" / "events.ndjson").read_bytes()
    done = subprocess.run([exe, "run", "--no-cache"], input=events, capture_output=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    assert len(out) == len(events.splitlines())
    assert any(b'"rule"' in line for line in out)
