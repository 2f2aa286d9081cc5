#!/bin/sh
# The streams and the N durable consumers of the central tier, with the `nats` CLI
# (github.com/nats-io/natscli). N must match the {{partition(N,1)}} in events-stream.json and the
# StatefulSet's replicas and --partitions (shellsieve-consume.yaml). docs/nats.md.
#
# Run: NATS_URL=nats://nats:4222 sh deploy/nats/setup.sh
set -eu
here=$(dirname "$0")
N=${PARTITIONS:-8}

nats stream add EVENTS --config "$here/events-stream.json"
nats stream add SHELLSIEVE --config "$here/shellsieve-stream.json"
i=0
while [ "$i" -lt "$N" ]; do
  sed -e "s/shellsieve-0/shellsieve-$i/" -e "s/events\.p\.0\./events.p.$i./" "$here/consumer.json" > "/tmp/consumer-$i.json"
  nats consumer add EVENTS "shellsieve-$i" --config "/tmp/consumer-$i.json"
  i=$((i + 1))
done
# Vector reads the alerts back with its own durable consumer (vector-nats.toml)
nats consumer add SHELLSIEVE vector-alerts --pull --filter shellsieve.alerts --ack explicit --deliver all \
  --max-deliver=-1 --max-pending 1000 --wait 30s --replay instant --defaults
