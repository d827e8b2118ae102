#!/usr/bin/env bash
# Write the compose stack's secrets into .env (git-ignored, mode 600), once. docker-compose reads
# .env next to docker-compose.yml; without MLFLOW_DB_PASSWORD the stack refuses to start.
#
#   scripts/stack-env.sh            create .env unless it already sets the password
#   scripts/stack-env.sh --force    replace the password (an existing postgres-data volume
#                                   keeps the old one: `docker-compose down -v` first)
# SENTINEL_STACK_ENV_FILE names another file (the tests use it).
set -euo pipefail
ENV_FILE=${SENTINEL_STACK_ENV_FILE:-"$(cd "$(dirname "$0")/.." && pwd)/.env"}
force=0
case "${1:-}" in
  --force) force=1 ;;
  "") ;;
  *) echo "stack-env: unknown argument $1 (use --force)" >&2; exit 2 ;;
esac
if [ "$force" = 0 ] && [ -f "$ENV_FILE" ] && grep -q '^MLFLOW_DB_PASSWORD=.' "$ENV_FILE" \
   && grep -q '^SENTINEL_API_TOKEN=.' "$ENV_FILE"; then
  echo "stack-env: $ENV_FILE already sets MLFLOW_DB_PASSWORD and SENTINEL_API_TOKEN; kept" \
       "(--force replaces them)" >&2
  exit 0
fi
# Hex: safe inside the PostgreSQL URI without escaping.
password=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
umask 077
tmp=$(mktemp "$ENV_FILE.XXXXXX")
token=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')  # the workers' bearer token
if [ -f "$ENV_FILE" ]; then
  grep -v '^MLFLOW_DB_PASSWORD=\|^SENTINEL_API_TOKEN=' "$ENV_FILE" > "$tmp" || true
fi
printf 'MLFLOW_DB_PASSWORD=%s\nSENTINEL_API_TOKEN=%s\n' "$password" "$token" >> "$tmp"
mv "$tmp" "$ENV_FILE"
echo "stack-env: wrote MLFLOW_DB_PASSWORD and SENTINEL_API_TOKEN to $ENV_FILE" >&2
