#!/usr/bin/env bash
# Build the base images docker-compose.local.yml uses, for machines that cannot pull from a
# registry. Everything comes from Debian bookworm's packages plus the Kafka jars Sentinel caches:
#
#   sentinel-local/debian:bookworm      debootstrap --variant=minbase, then docker import (root)
#   sentinel-local/python:3.11-slim     python3.11 + venv          (stands in for python:3.11-slim)
#   sentinel-local/kafka:3.9.1          JRE 17 + cached broker jars (stands in for apache/kafka)
#   sentinel-local/postgres:15          PostgreSQL 15               (stands in for postgres:15)
#   sentinel-local/prometheus:bookworm  Prometheus                  (stands in for prom/prometheus)
#
# An image that exists is kept (a warm machine builds nothing); --rebuild rebuilds them all
# (the debootstrap base too). The Sentinel image itself is built by docker-compose from the
# Dockerfile: docker-compose -f docker-compose.yml -f docker-compose.local.yml build.
#
# Env: DEBIAN_MIRROR (default http://deb.debian.org/debian), SENTINEL_KAFKA_LIBS (default
# ~/.cache/sentinel/kafka/3.9.1/libs; fetched with `make broker-artifacts` when missing).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOCAL="$ROOT/deploy/local"
KAFKA_VERSION=3.9.1
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
KAFKA_LIBS=${SENTINEL_KAFKA_LIBS:-$HOME/.cache/sentinel/kafka/$KAFKA_VERSION/libs}
BASE=sentinel-local/debian:bookworm
REBUILD=0

note() { printf 'build-local-images: %s\n' "$*" >&2; }
die() { note "error: $*"; exit 1; }

for arg in "$@"; do
  case "$arg" in
    --rebuild) REBUILD=1 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) die "unknown argument $arg (use --rebuild or --help)" ;;
  esac
done

command -v docker >/dev/null 2>&1 || die "docker is not installed (Debian: apt-get install docker.io)"
docker info >/dev/null 2>&1 || die "no Docker engine answers (start dockerd, or run as a user in group docker)"

have() { [ "$REBUILD" = 0 ] && docker image inspect "$1" >/dev/null 2>&1; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

build() {  # build <tag> <dockerfile> <context>
  local started=$SECONDS
  note "building $1"
  docker build -q --build-arg "DEBIAN_IMAGE=$BASE" -t "$1" -f "$2" "$3" >/dev/null \
    || die "docker build of $1 failed (rerun without -q: docker build -f $2 $3)"
  note "built $1 in $((SECONDS - started)) s"
}

# -- the Debian base ------------------------------------------------------------------------
if have "$BASE"; then
  note "kept $BASE"
else
  [ "$(id -u)" -eq 0 ] || die "debootstrap needs root to build $BASE"
  command -v debootstrap >/dev/null 2>&1 || die "debootstrap is not installed (apt-get install debootstrap)"
  started=$SECONDS
  note "debootstrap bookworm from $MIRROR (about 2 minutes)"
  debootstrap --variant=minbase bookworm "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -5 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
  rm -rf "$WORK"/rootfs/var/cache/apt/archives/*.deb "$WORK"/rootfs/var/lib/apt/lists/*
  tar -C "$WORK/rootfs" -c . | docker import - "$BASE" >/dev/null
  rm -rf "$WORK/rootfs"
  note "imported $BASE in $((SECONDS - started)) s"
fi

# -- Python ---------------------------------------------------------------------------------
if have sentinel-local/python:3.11-slim; then
  note "kept sentinel-local/python:3.11-slim"
else
  mkdir -p "$WORK/python/ca"
  # A TLS-inspecting egress proxy's CA (if the host trusts one) must be trusted by pip too.
  find /usr/local/share/ca-certificates -maxdepth 1 -name '*.crt' -exec cp {} "$WORK/python/ca/" \; 2>/dev/null || true
  build sentinel-local/python:3.11-slim "$LOCAL/python.Dockerfile" "$WORK/python"
fi

# -- Kafka ----------------------------------------------------------------------------------
if have "sentinel-local/kafka:$KAFKA_VERSION"; then
  note "kept sentinel-local/kafka:$KAFKA_VERSION"
else
  if [ ! -f "$KAFKA_LIBS/.complete" ] && [ -x "$ROOT/.venv/bin/python" ]; then
    note "Kafka jars missing: make broker-artifacts"
    make -C "$ROOT" -s broker-artifacts >/dev/null || die "make broker-artifacts failed"
  fi
  ls "$KAFKA_LIBS"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null 2>&1 \
    || die "no Kafka $KAFKA_VERSION jars in $KAFKA_LIBS (run: make broker-artifacts)"
  mkdir -p "$WORK/kafka/libs"
  cp "$KAFKA_LIBS"/*.jar "$WORK/kafka/libs/"
  cp "$LOCAL/kafka-run.sh" "$LOCAL/kafka-broker-api-versions.sh" "$WORK/kafka/"
  build "sentinel-local/kafka:$KAFKA_VERSION" "$LOCAL/kafka.Dockerfile" "$WORK/kafka"
fi

# -- PostgreSQL -----------------------------------------------------------------------------
if have sentinel-local/postgres:15; then
  note "kept sentinel-local/postgres:15"
else
  mkdir -p "$WORK/postgres"
  cp "$LOCAL/postgres-run.sh" "$WORK/postgres/"
  build sentinel-local/postgres:15 "$LOCAL/postgres.Dockerfile" "$WORK/postgres"
fi

# -- Prometheus -----------------------------------------------------------------------------
if have sentinel-local/prometheus:bookworm; then
  note "kept sentinel-local/prometheus:bookworm"
else
  mkdir -p "$WORK/prometheus"
  build sentinel-local/prometheus:bookworm "$LOCAL/prometheus.Dockerfile" "$WORK/prometheus"
fi
note "done; now: docker-compose -f docker-compose.yml -f docker-compose.local.yml up -d --build"
