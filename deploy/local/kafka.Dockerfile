# Stand-in for apache/kafka:3.9.1: Debian's JRE 17 with the broker jars Sentinel already caches
# (~/.cache/sentinel/kafka/<version>/libs, see sentinel/infra/broker.py). Same paths, same
# KAFKA_* environment, same user id as the official image. Built by scripts/build-local-images.sh.
ARG DEBIAN_IMAGE=sentinel-local/debian:bookworm
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && groupadd --gid 1000 appuser \
 && useradd --uid 1000 --gid appuser --no-create-home --home-dir /opt/kafka appuser \
 && mkdir -p /var/lib/kafka/data /opt/kafka/config /opt/kafka/bin \
 && chown appuser:appuser /var/lib/kafka/data /opt/kafka/config
COPY libs/ /opt/kafka/libs/
COPY kafka-run.sh /opt/kafka/bin/kafka-run.sh
COPY kafka-broker-api-versions.sh /opt/kafka/bin/kafka-broker-api-versions.sh
ENV KAFKA_HEAP_OPTS="-Xms256m -Xmx512m"
USER appuser
EXPOSE 9092
CMD ["/opt/kafka/bin/kafka-run.sh"]
