"""`shellsieve explain`: why a rule did or did not match one event (not on the hot path)."""
