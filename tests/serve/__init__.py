"""Tests of `shellsieve serve` on the wire: peers.py speaks what Vector and Fluent Bit send and answer,
conftest.py numbers every event per connection and runs the real CLI as a child process."""
