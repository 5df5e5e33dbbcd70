#!/usr/bin/env bash
# Make sure PostgreSQL (DATABASE_URL) and RabbitMQ (AMQP_URL) answer: start them where they are
# installed, install them where we are root on Debian, use Docker where an engine runs, else say what to do.
set -euo pipefail

DATABASE_URL=${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/luster}
AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}

# host and port of a URL, defaulting the port; of the first address where there are several (a cluster's
# AMQP_URL list, a DATABASE_URL naming a primary and its standbys)
endpoint() {
  python3 - "$1" "$2" <<'PY'
import sys
from urllib.parse import urlsplit
url = urlsplit(sys.argv[1].split(",")[0])
print(url.hostname or "127.0.0.1", url.port or int(sys.argv[2]))
PY
}

answers() {  # host port
  python3 - "$1" "$2" <<'PY'
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()
except OSError:
    sys.exit(1)
PY
}

wait_for() {  # name host port seconds
  local deadline=$((SECONDS + $4))
  until answers "$2" "$3"; do
    if ((SECONDS > deadline)); then echo "luster: $1 did not come up on $2:$3 within $4 s" >&2; return 1; fi
    sleep 1
  done
}

is_local() { [[ $1 == 127.* || $1 == localhost || $1 == ::1 ]]; }

can_apt() { [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; }

apt_install() {
  echo "luster: installing $* with apt-get"
  apt-get update -qq >/dev/null || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

docker_up() { command -v docker >/dev/null && docker info >/dev/null 2>&1 && docker compose up -d "$1"; }

start_postgres() {
  if ! command -v pg_ctlcluster >/dev/null && can_apt; then
    apt_install postgresql
    # A cluster we just installed: let local connections in without a password, as on a developer machine.
    local hba; hba=$(ls /etc/postgresql/*/main/pg_hba.conf | head -n 1)
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  fi
  if command -v pg_ctlcluster >/dev/null; then
    local version; version=$(ls /etc/postgresql | sort -V | tail -n 1)
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    return 0
  fi
  docker_up postgres && return 0
  echo "luster: PostgreSQL does not answer at $DATABASE_URL and is not installed. Install PostgreSQL 15+ (Debian: apt-get install postgresql), or start a Docker engine, or point DATABASE_URL at a running server." >&2
  return 1
}

start_rabbitmq() {
  if ! command -v rabbitmq-server >/dev/null && can_apt; then
    apt_install rabbitmq-server
  fi
  if command -v rabbitmq-server >/dev/null; then
    rabbitmq-server -detached || true
    return 0
  fi
  docker_up rabbitmq && return 0
  echo "luster: RabbitMQ does not answer at $AMQP_URL and is not installed. Install RabbitMQ 3.10+ (Debian: apt-get install rabbitmq-server), or start a Docker engine, or point AMQP_URL at a running server." >&2
  return 1
}

ensure() {  # name url default-port starter seconds
  local host port
  read -r host port < <(endpoint "$2" "$3")
  answers "$host" "$port" && return 0
  if ! is_local "$host"; then
    echo "luster: $1 does not answer at $host:$port (from $2); it is not on this machine, so start it there." >&2
    return 1
  fi
  echo "luster: $1 is not answering on $host:$port; starting it"
  "$4"
  wait_for "$1" "$host" "$port" "$5"
}

ensure PostgreSQL "$DATABASE_URL" 5432 start_postgres 60
ensure RabbitMQ "$AMQP_URL" 5672 start_rabbitmq 120
if command -v rabbitmqctl >/dev/null; then timeout 120 rabbitmqctl await_startup >/dev/null 2>&1 || true; fi
echo "luster: PostgreSQL and RabbitMQ answer"
