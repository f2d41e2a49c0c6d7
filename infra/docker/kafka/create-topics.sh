#!/usr/bin/env bash
# One-shot topic creation for the `topics` service of docker-compose.yml (runs in the baton/kafka image, whose
# /opt/kafka/bin/kafka-topics.sh runs kafka-tools' TopicCommand).
#
# Creates the orchestrator's fixed topics and the job topics of the listed actions with the settings the
# orchestrator itself uses (orchestrator/baton_orchestrator/bus/kafka.py): BATON_TOPIC_PARTITIONS
# partitions, replication factor 1, max.message.bytes = BATON_MAX_PAYLOAD_BYTES + 65536. Topics that
# already exist are left alone, so the service can run on every `up`.
#
# Env: BATON_KAFKA_BOOTSTRAP_SERVERS, BATON_TOPIC_PREFIX, BATON_TOPIC_PARTITIONS, BATON_MAX_PAYLOAD_BYTES,
# BATON_ACTIONS (space-separated action names), KAFKA_TOPICS_SH (the topics tool; tests substitute it).
set -euo pipefail

bootstrap=${BATON_KAFKA_BOOTSTRAP_SERVERS:-kafka:9092}
prefix=${BATON_TOPIC_PREFIX-workflow-}
partitions=${BATON_TOPIC_PARTITIONS:-6}
payload=${BATON_MAX_PAYLOAD_BYTES:-1048576}
kafka_topics=${KAFKA_TOPICS_SH:-/opt/kafka/bin/kafka-topics.sh}
max_message_bytes=$((payload + 65536))

topics=("${prefix}results" "${prefix}results.DLT" "${prefix}jobs.DLT" "${prefix}workers")
for action in ${BATON_ACTIONS:-}; do
  if [[ ! $action =~ ^[A-Za-z0-9._-]{1,200}$ || $action == DLT ]]; then
    echo "create-topics: invalid action name '$action'" >&2
    exit 2
  fi
  topics+=("${prefix}jobs.${action}")
done

# One JVM start to list what exists (a restart creates nothing), then one per missing topic.
existing=$("$kafka_topics" --bootstrap-server "$bootstrap" --list)
for topic in "${topics[@]}"; do
  if grep -qxF -- "$topic" <<<"$existing"; then
    echo "create-topics: $topic exists"
    continue
  fi
  "$kafka_topics" --bootstrap-server "$bootstrap" --create --if-not-exists --topic "$topic" \
    --partitions "$partitions" --replication-factor 1 --config "max.message.bytes=${max_message_bytes}"
done
echo "create-topics: ready (${#topics[@]} topics)"
