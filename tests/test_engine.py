"""The Hyperscan build itself: the prefilter is only as exact as the engine under it."""

import hyperscan as hs


def _ids(expressions: list[bytes], data: bytes) -> set[int]:
    db = hs.Database(mode=hs.HS_MODE_BLOCK)
    db.compile(expressions=expressions, ids=list(range(len(expressions))), elements=len(expressions),
               flags=[0] * len(expressions))
    found: set[int] = set()
    db.scan(data, match_event_handler=lambda pid, *_: found.add(pid))
    return found


def test_gap_pattern_next_to_a_suffix_literal_is_reported() -> None:
    """Vectorscan 5.4.12 (hyperscan wheels 0.7.23 and later) drops pattern 2 here, so the line
    database would miss a candidate line: found by tests/test_diff_fastpath.py on a public Elastic
    rule (netcat listener). pyproject.toml pins the last wheel whose engine reports it."""
    patterns = [rb"-", rb'"ncat"[^\n]*"<', rb'"ncat"[^\n]*"-']
    assert _ids(patterns, b'"ncat",start, "process.args":"-2"}\n') == {0, 2}
