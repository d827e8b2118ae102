#!/bin/bash
# The official image's start-up, reduced: KAFKA_FOO_BAR=x becomes foo.bar=x in
# server.properties (___ -> '-', __ -> '_'), the log dir is formatted once with CLUSTER_ID,
# then the broker replaces this shell (signals reach Java directly).
set -euo pipefail
CONFIG=/opt/kafka/config/server.properties
: "${CLUSTER_ID:?CLUSTER_ID is required (any base64 UUID)}"
: > "$CONFIG"
while IFS='=' read -r name value; do
  case "$name" in
    KAFKA_HEAP_OPTS|KAFKA_OPTS|KAFKA_JVM_PERFORMANCE_OPTS|KAFKA_LOG4J_OPTS) continue ;;
    KAFKA_*) ;;
    *) continue ;;
  esac
  key=${name#KAFKA_}
  key=$(printf '%s' "$key" | sed -e 's/___/-/g' -e 's/__/@/g' -e 's/_/./g' -e 's/@/_/g' \
        | tr '[:upper:]' '[:lower:]')
  printf '%s=%s\n' "$key" "$value" >> "$CONFIG"
done < <(env)
cat > /opt/kafka/config/log4j.properties <<'LOG4J'
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=WARN
log4j.logger.org.apache.kafka=WARN
log4j.logger.kafka.server.KafkaRaftServer=INFO
LOG4J
CP='/opt/kafka/libs/*'
LOG4J_OPTS="-Dlog4j.configuration=file:/opt/kafka/config/log4j.properties"
# shellcheck disable=SC2086  # the heap options are a word list
java $KAFKA_HEAP_OPTS $LOG4J_OPTS -cp "$CP" kafka.tools.StorageTool format \
  -t "$CLUSTER_ID" -c "$CONFIG" --ignore-formatted
# shellcheck disable=SC2086
exec java $KAFKA_HEAP_OPTS -XX:+UseG1GC -Djava.awt.headless=true $LOG4J_OPTS \
  -cp "$CP" kafka.Kafka "$CONFIG"
