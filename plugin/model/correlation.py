"""Sigma meta rules: correlations (a rule over other rules' hits) and filters (exceptions to rules).

The loader (rules/sigma_meta.py) builds these as the `query` of a Rule, so that selection, `check`
and the caches treat them as rules; compile_rules sets them aside from the pattern database and
resolves their references (rule `name`s to ids); run/meta.py evaluates correlations on the hits of
the rules they reference, and filters become exceptions (model/exceptions.py).
"""

from __future__ import annotations

import msgspec

from shellsieve.model.expr import Expr

__all__ = ["TYPES", "COMPARISONS", "Correlation", "Filter"]

TYPES = ("event_count", "value_count", "temporal", "temporal_ordered", "value_sum", "value_avg",
         "value_percentile", "value_median")
COMPARISONS = ("gt", "gte", "lt", "lte", "eq", "neq")


class Correlation(msgspec.Struct, frozen=True):
    """A Sigma correlation. `rules` are ids once resolved (names as written until then); `aliases`
    maps an alias of `group_by` to (referenced rule, its field) pairs; `condition` holds (op, value)
    pairs that must all hold (`gt: 100, lte: 200` is a range). `field`: what value_* types read."""

    type: str  # one of TYPES
    rules: tuple[str, ...]
    group_by: tuple[str, ...]
    timespan: float  # seconds
    condition: tuple[tuple[str, float], ...]
    aliases: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
    generate: bool = False  # the referenced rules alert on their own too
    field: str | None = None
    percentile: int | None = None  # value_percentile: the percentile compared (None: see docs)

    def field_for(self, rule_id: str, name: str) -> str:
        """The event field a `group_by` name reads in hits of `rule_id` (an alias, else itself)."""
        for alias, mapping in self.aliases:
            if alias == name:
                for rid, f in mapping:
                    if rid == rule_id:
                        return f
        return name


class Filter(msgspec.Struct, frozen=True):
    """A Sigma filter: for the rules it names (None: every Sigma rule of its logsource), an event
    where `condition` does not hold is excepted (pySigma ANDs the condition to the rule's)."""

    rules: tuple[str, ...] | None
    logsource: tuple[str, ...]  # the non-empty values of product, category, service
    condition: Expr
