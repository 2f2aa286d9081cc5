"""`shellsieve consume`: the engine as a worker on a NATS JetStream stream (docs/nats.md)."""
