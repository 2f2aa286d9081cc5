"""The docs site (issue 27, item 2): every page is in the nav and every nav entry exists, the
generated pages are what their scripts make now (the coverage page, slow: a cold load of the public
collections), and the plot script draws what the benchmark JSON holds."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
RESULTS = ROOT / "bench" / "results" / "line_rate.json"


def _module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Loader(yaml.SafeLoader):
    """mkdocs.yml's `!!python/name:` tags read as their text: the nav is all this test needs."""


_Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: suffix)


def _nav_pages(nav: Any) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [p for item in nav for p in _nav_pages(item)]
    if isinstance(nav, dict):
        return [p for value in nav.values() for p in _nav_pages(value)]
    return []


class TestSite:
    def test_nav_lists_every_page_once(self) -> None:
        """Each docs/*.md is in mkdocs.yml's nav exactly once, and each nav entry is a page."""
        config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=_Loader)
        pages = _nav_pages(config["nav"])
        assert sorted(pages) == sorted(p.name for p in DOCS.glob("*.md"))
        assert len(pages) == len(set(pages))

    def test_mermaid_fence_is_configured(self) -> None:
        """The pages' ```mermaid blocks render: superfences has the mermaid custom fence."""
        config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=_Loader)
        (fences,) = [e["pymdownx.superfences"]["custom_fences"] for e in config["markdown_extensions"]
                     if isinstance(e, dict) and "pymdownx.superfences" in e]
        assert {"name": "mermaid", "class": "mermaid",
                "format": "name:pymdownx.superfences.fence_code_format"} in fences
        assert config["theme"]["name"] == "material" and config["strict"] is True

    def test_no_link_leaves_docs(self) -> None:
        """No Markdown link in docs/ points outside docs/ (strict mode refuses them): such files are
        named as code spans."""
        for page in DOCS.glob("*.md"):
            for target in re.findall(r"\]\(([^)#\s]+)", page.read_text()):
                if "://" in target or target.startswith("mailto:"):
                    continue
                assert (DOCS / target).resolve().is_relative_to(DOCS), f"{page.name}: {target}"


class TestPlots:
    def test_page_is_current(self) -> None:
        """docs/performance-plots.md is what bench/plots.py draws from bench/results/line_rate.json."""
        plots = _module(ROOT / "bench" / "plots.py")
        page = plots.render(json.loads(RESULTS.read_text()), "bench/results/line_rate.json")
        assert (DOCS / "performance-plots.md").read_text() == page, \
            "stale: run python bench/plots.py bench/results/line_rate.json"

    def test_charts_carry_the_json_figures(self, tmp_path: Path) -> None:
        """One bar per row and per shape, each the JSON's figure, under a y-axis that holds them all."""
        doc = {"events": 1000, "bytes": 661_000, "rounds": 1,
               "rows": [{"name": "shellsieve, shipped rules", "events": 1000, "cpu": 0.5, "start": 0.1,
                         "rss_mib": 30.0, "steady": 0.4, "events_per_cpu_s": 2500.0},
                        {"name": "floor: one raw scan", "events": 1000, "cpu": 0.2, "start": 0.1,
                         "rss_mib": 10.0, "steady": 0.1, "events_per_cpu_s": 10000.0}],
               "shapes": [{"name": "plain", "events": 100, "cpu": 0.1, "start": 0.05, "rss_mib": 1.0,
                           "steady": 0.05, "us_per_event": 5.0, "x_plain": 1.0}]}
        (tmp_path / "r.json").write_text(json.dumps(doc))
        out = tmp_path / "page.md"
        done = subprocess.run([sys.executable, str(ROOT / "bench" / "plots.py"), str(tmp_path / "r.json"),
                               "--out", str(out)], capture_output=True, text=True, check=False, timeout=60)
        assert done.returncode == 0, done.stderr
        charts = re.findall(r"```mermaid\n(.*?)```", out.read_text(), re.DOTALL)
        assert len(charts) == 2 and all(c.startswith("xychart-beta\n") for c in charts)
        assert 'x-axis ["shellsieve, shipped rules", "floor"]' in charts[0]
        assert "bar [2500, 10000]" in charts[0] and "0 --> 10000" in charts[0]
        assert "bar [5.0]" in charts[1] and "0 --> 5" in charts[1]


@pytest.mark.slow
def test_coverage_page_is_current() -> None:
    """docs/coverage.md is what `check --json` over the public collections says now (cold: ~30 CPU-s)."""
    gen = ROOT / "docs" / "gen_coverage.py"
    if not all((ROOT / p).is_dir() for _, p in _module(gen).COLLECTIONS):
        pytest.skip("the public collections (../shared/rulesets) are not here")
    done = subprocess.run([sys.executable, str(gen), "--check"], cwd=ROOT, capture_output=True, text=True,
                          check=False, timeout=1800)
    assert done.returncode == 0, done.stderr
