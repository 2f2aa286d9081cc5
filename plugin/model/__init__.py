"""The one rule model every source format parses into (no parser or Hyperscan imports)."""
