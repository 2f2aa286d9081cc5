"""`shellsieve serve`: the engine behind network listeners, with a bounded buffer to a forward output."""
