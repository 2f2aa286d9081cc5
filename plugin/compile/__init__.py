"""Model -> runtime artefacts (the one Hyperscan database, hash sets, confirm closures). No event I/O."""
