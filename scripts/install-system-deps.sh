#!/usr/bin/env bash
# Install the Debian packages Sentinel's tests and tooling need, idempotently and without prompts.
#
#   prometheus      /usr/bin/prometheus and promtool: rule tests and the scrape integration test
#   chromium        headless browser for the dashboard test (screenshot + DOM)
#   docker-compose  `docker-compose config` validates docker-compose.yml; the stack test runs it
#   docker.io       the Docker engine the stack test starts (tests/stack; make stack-test)
#   debootstrap     the Debian base image of scripts/build-local-images.sh (no registry needed)
#   postgresql      initdb, pg_ctl and postgres: the label store's PostgreSQL backend, tested on a
#                   private server per test session (tests/integration/postgres_server.py)
#
# Packages already installed are skipped. Without apt (not Debian, or not root) this prints a
# note and exits 0: the tests that need a missing tool skip with a reason that names it.
# The Debian prometheus package starts a service on :9090, and postgresql a cluster on :5432;
# the tests run their own on free ports, so those services are stopped and disabled here.
set -u

PACKAGES=(prometheus chromium docker-compose docker.io debootstrap postgresql)

note() { printf 'install-system-deps: %s\n' "$*" >&2; }

if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-query >/dev/null 2>&1; then
    note "apt-get not found; install these yourself if you need the tests that use them: ${PACKAGES[*]}"
    exit 0
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    note "all present: ${PACKAGES[*]}"
else
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            SUDO="sudo -n"
        else
            note "not root and no passwordless sudo; skipping install of: ${missing[*]}"
            exit 0
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    note "installing: ${missing[*]}"
    # Refresh the lists only when they are missing or older than a day.
    if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null | head -1)" ]; then
        $SUDO apt-get update -qq || note "apt-get update failed; trying with the lists we have"
    fi
    installable=()
    for pkg in "${missing[@]}"; do
        if apt-cache show "$pkg" >/dev/null 2>&1; then
            installable+=("$pkg")
        else
            note "package $pkg is not available here; skipping it"
        fi
    done
    if [ ${#installable[@]} -gt 0 ]; then
        if ! $SUDO apt-get install -y -qq --no-install-recommends \
                -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
                "${installable[@]}"; then
            note "apt-get install failed for: ${installable[*]} (the tests that need them will skip)"
            exit 0
        fi
    fi
fi

# The packages' own services would hold :9090 and :5432 and serve nothing of ours: stop them.
for service in prometheus postgresql; do
    if dpkg-query -W -f='${Status}' "$service" 2>/dev/null | grep -q 'install ok installed'; then
        if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
            ${SUDO:-} systemctl disable --now "$service" >/dev/null 2>&1 || true
        elif command -v service >/dev/null 2>&1; then
            ${SUDO:-} service "$service" stop >/dev/null 2>&1 || true
        fi
    fi
done

for tool in prometheus promtool chromium docker-compose dockerd debootstrap; do
    if command -v "$tool" >/dev/null 2>&1; then
        note "ok: $tool -> $(command -v "$tool")"
    else
        note "missing: $tool"
    fi
done
# Debian keeps the server's binaries off PATH, under /usr/lib/postgresql/<version>/bin.
initdb=$(command -v initdb 2>/dev/null || ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1)
if [ -n "$initdb" ]; then
    note "ok: initdb -> $initdb"
else
    note "missing: initdb (postgresql)"
fi
exit 0
