"""shellsieve: a log-pipeline filter that tags reverse shells and web-server shells."""

from __future__ import annotations

__version__ = "0.1.0"

from shellsieve.compile.ruleset import Ruleset, compile_rules
from shellsieve.rules.discover import load_rules
from shellsieve.run.loop import run_filter

__all__ = ["__version__", "load_rules", "compile_rules", "run_filter", "Ruleset"]
