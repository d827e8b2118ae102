#!/bin/bash
# The official image's readiness probe, from the cached jars: answers once the broker serves
# requests on the given listener.
exec java -Xmx64m -XX:TieredStopAtLevel=1 -Dlog4j.configuration=file:/opt/kafka/config/log4j.properties \
  -cp '/opt/kafka/libs/*' kafka.admin.BrokerApiVersionsCommand "$@"
