#!/usr/bin/env bash
# Entrypoint of the Kafka image: a single-node KRaft broker configured from the environment, as the
# apache/kafka image is. Each KAFKA_<NAME> variable becomes the property <name> (lower case, _ -> .), except
# the JVM settings (KAFKA_HEAP_OPTS, KAFKA_JVM_PERFORMANCE_OPTS, KAFKA_OPTS). CLUSTER_ID formats the storage
# in KAFKA_LOG_DIRS on the first start (an existing volume is kept as it is).
set -euo pipefail
props=/tmp/server.properties
: "${KAFKA_LOG_DIRS:?KAFKA_LOG_DIRS is required}"
: "${CLUSTER_ID:?CLUSTER_ID is required}"

: >"$props"
for var in "${!KAFKA_@}"; do
  case $var in KAFKA_HEAP_OPTS | KAFKA_JVM_PERFORMANCE_OPTS | KAFKA_OPTS) continue ;; esac
  key=${var#KAFKA_}
  key=${key,,}
  printf '%s=%s\n' "${key//_/.}" "${!var}" >>"$props"
done

if [ ! -f "$KAFKA_LOG_DIRS/meta.properties" ]; then
  echo "kafka-run: formatting $KAFKA_LOG_DIRS (cluster $CLUSTER_ID)"
  kafka-java kafka.tools.StorageTool format --ignore-formatted -t "$CLUSTER_ID" -c "$props"
fi
exec kafka-java kafka.Kafka "$props"
