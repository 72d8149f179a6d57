#!/bin/sh
# deploy/compose.yaml's Kafka, secured (issue 14). The apache/kafka image's own start
# script builds its configuration from KAFKA_* variables, which would put the broker's
# passwords into the container's environment; this one runs the broker on the
# server.properties that `engine broker secure-files` made (a compose secret):
#   - the first start formats the storage (KRaft, this node its only voter) with a
#     SCRAM-SHA-512 credential for every principal, one per line of kafka_scram_users;
#   - then the broker runs: SASL_SSL on 9092 (compose network) and 29092 (the host),
#     the controller on the container's loopback, StandardAuthorizer.
# The ACLs come after, from the kafka-setup service (`engine broker acls`).
# tests/integration/test_compose_broker.py runs this script with the local broker's jars.
set -eu

secrets=${ENGINE_SECRETS_DIR:-/run/secrets}
data=${KAFKA_DATA_DIR:-/var/lib/kafka/data}
bin=${KAFKA_BIN:-/opt/kafka/bin}
props=$secrets/kafka_server_properties

if [ ! -f "$data/meta.properties" ]; then
    set --
    while IFS= read -r credential || [ -n "$credential" ]; do
        if [ -n "$credential" ]; then
            set -- "$@" --add-scram "$credential"
        fi
    done < "$secrets/kafka_scram_users"
    if [ "$#" -eq 0 ]; then
        echo "compose-start: no SCRAM credentials in $secrets/kafka_scram_users" >&2
        exit 1
    fi
    cluster_id=$("$bin/kafka-storage.sh" random-uuid)
    "$bin/kafka-storage.sh" format --cluster-id "$cluster_id" --config "$props" \
        --standalone "$@"
fi
exec "$bin/kafka-server-start.sh" "$props"
