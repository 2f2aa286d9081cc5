"""The hot path: framing, scan, match, correlate, enrich, write. Never imports rules/."""
