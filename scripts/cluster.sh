#!/usr/bin/env bash
# A local "cluster" beside the machine's own servers, for failover tests:
#   - three RabbitMQ nodes luster-rabbit-{1,2,3}@<host> (AMQP 5681-5683, distribution 25681-25683);
#   - a PostgreSQL primary (15/luster_primary, 5442) with a synchronous streaming standby (15/luster_standby, 5443).
# The machine's own RabbitMQ (rabbit@localhost, 5672) and PostgreSQL (15/main, 5432) are never touched: every
# command here names our nodes (-n NODE) and our clusters explicitly.
#
# Usage: scripts/cluster.sh start|stop|status|env|pg-reset
set -euo pipefail

BASE=${LUSTER_CLUSTER_DIR:-/var/tmp/luster-cluster}
# The host part of the node names: `localhost` resolves here and on any machine, and the machine's own node
# already uses it; LUSTER_RABBIT_HOST overrides it (e.g. $(hostname -s)) where it does not.
RABBIT_HOST=${LUSTER_RABBIT_HOST:-localhost}
RABBIT_SBIN=/usr/lib/rabbitmq/bin  # the real scripts: /usr/sbin's wrapper would write the machine's startup_log
RABBIT_HOME=/var/lib/rabbitmq      # its .erlang.cookie is what our nodes and every rabbitmqctl share
RABBIT_NODES=(1 2 3)
AMQP_PORT_BASE=5680    # node N listens on 5680+N
DIST_PORT_BASE=25680   # and speaks Erlang distribution on 25680+N

PG_VERSION=$(ls /etc/postgresql | sort -V | tail -n 1)
PG_PRIMARY=luster_primary
PG_STANDBY=luster_standby
PG_PRIMARY_PORT=5442
PG_STANDBY_PORT=5443
PG_DIR=$BASE/postgresql

START_WAIT_S=90

log() { echo "cluster: $*" >&2; }
die() { log "$*"; exit 1; }

# Poll a command until it succeeds, or fail after $1 seconds (no fixed sleeps beyond the poll interval).
wait_until() {  # seconds what command...
  local limit=$1 what=$2 deadline=$((SECONDS + $1))
  shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { log "timed out after $limit s waiting for $what"; return 1; }
    sleep 0.5
  done
}

# ---------------------------------------------------------------------------------------------- RabbitMQ

node_name() { echo "luster-rabbit-$1@$RABBIT_HOST"; }
node_dir() { echo "$BASE/luster-rabbit-$1"; }

# Every CLI call as the rabbitmq user with its HOME, so it reads the same Erlang cookie as the nodes; each
# with a time limit, since a CLI that cannot reach a half-started node can otherwise wait a long time.
rabbitmqctl_as() {  # limit_s node_number args...
  local limit=$1 n=$2
  shift 2
  timeout "$limit" runuser -u rabbitmq -- env HOME="$RABBIT_HOME" \
    "$RABBIT_SBIN/rabbitmqctl" -n "$(node_name "$n")" "$@"
}

# A node's own environment file, config file and (empty) plugin list. Our own RABBITMQ_CONF_ENV_FILE also keeps
# the nodes from reading /etc/rabbitmq/rabbitmq-env.conf, which names the machine's node.
write_node_config() {  # n
  local n=$1 dir
  dir=$(node_dir "$n")
  install -d -o rabbitmq -g rabbitmq -m 0750 "$dir" "$dir/mnesia" "$dir/log"
  cat >"$dir/rabbitmq-env.conf" <<EOF
NODENAME=$(node_name "$n")
NODE_IP_ADDRESS=127.0.0.1
NODE_PORT=$((AMQP_PORT_BASE + n))
DIST_PORT=$((DIST_PORT_BASE + n))
MNESIA_BASE=$dir/mnesia
LOG_BASE=$dir/log
CONFIG_FILE=$dir/rabbitmq.conf
ADVANCED_CONFIG_FILE=$dir/advanced.config
ENABLED_PLUGINS_FILE=$dir/enabled_plugins
PID_FILE=$dir/pid
# Like the machine's node: epmd and the distribution listener on loopback only.
ERL_EPMD_ADDRESS=127.0.0.1
export ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}"
EOF
  cat >"$dir/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:$((AMQP_PORT_BASE + n))
# pause_minority: with three nodes, a node that can see only itself (a minority) pauses instead of going on
# alone, so a partition can never leave two halves that both accept writes (autoheal would pick a winner
# afterwards and drop the loser's messages; ignore would never reconcile). Two nodes keep serving.
cluster_partition_handling = pause_minority
# guest may log in over loopback only (the default, said here so nobody widens it by accident).
loopback_users.guest = true
log.file.level = info
log.console = false
EOF
  # No plugins at all: no management or prometheus listener can collide with the machine's node.
  echo '[].' >"$dir/enabled_plugins"
  chown rabbitmq:rabbitmq "$dir/rabbitmq-env.conf" "$dir/rabbitmq.conf" "$dir/enabled_plugins"
}

node_running() {  # n: the node answers and its rabbit application runs
  rabbitmqctl_as 20 "$1" -q await_startup --timeout 5 >/dev/null 2>&1
}

start_node() {  # n: start it detached, as rabbitmq, with our environment file only
  local n=$1 dir
  dir=$(node_dir "$n")
  log "starting $(node_name "$n") on 127.0.0.1:$((AMQP_PORT_BASE + n))"
  (cd "$dir" && runuser -u rabbitmq -- env HOME="$RABBIT_HOME" RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf" \
    "$RABBIT_SBIN/rabbitmq-server" -detached >>"$dir/log/startup.log" 2>&1)
}

running_nodes() {  # n: the cluster's running nodes as node n sees them, one a line
  rabbitmqctl_as 30 "$1" -q cluster_status --formatter json |
    python3 -c 'import json, sys; print("\n".join(json.load(sys.stdin)["running_nodes"]))'
}

in_cluster() {  # n: node n runs in node 1's cluster (no grep -q in the pipe: with pipefail, its early exit fails it)
  local nodes
  nodes=$(running_nodes "$1" 2>/dev/null) || return 1
  grep -qx "$(node_name 1)" <<<"$nodes"
}

join_node() {  # n: join node 1's cluster (join_cluster resets the joining node first)
  local n=$1
  log "joining $(node_name "$n") to $(node_name 1)"
  rabbitmqctl_as 60 "$n" -q stop_app
  rabbitmqctl_as 60 "$n" -q join_cluster "$(node_name 1)"
  rabbitmqctl_as 60 "$n" -q start_app
}

rabbit_healthy() {
  local n count
  for n in "${RABBIT_NODES[@]}"; do node_running "$n" || return 1; done
  count=$(running_nodes 1 | grep -c '^luster-rabbit-') || return 1
  ((count == ${#RABBIT_NODES[@]}))
}

rabbit_start() {
  local n
  install -d -o rabbitmq -g rabbitmq -m 0755 "$BASE"
  # Start every stopped node before waiting for any: a node that was clustered waits at boot for the peers
  # it last saw, so they have to come up together.
  for n in "${RABBIT_NODES[@]}"; do
    write_node_config "$n"
    node_running "$n" || start_node "$n"
  done
  # -detached returns before the VM registers with epmd, and await_startup gives up at once on a node epmd
  # does not know yet: poll it.
  for n in "${RABBIT_NODES[@]}"; do
    wait_until "$START_WAIT_S" "$(node_name "$n") to start" rabbitmqctl_as 30 "$n" -q await_startup --timeout 10 ||
      die "$(node_name "$n") did not start: see $(node_dir "$n")/log"
  done
  for n in "${RABBIT_NODES[@]:1}"; do
    # Asked twice: a join stops the node's app, which a CLI call that merely failed once must not cause.
    in_cluster "$n" || in_cluster "$n" || join_node "$n"
  done
  wait_until 60 "all three RabbitMQ nodes running in one cluster" rabbit_healthy
}

# A node's beam.smp, from its pid file, if that process still runs.
node_pid() {  # n
  local pid
  pid=$(cat "$(node_dir "$1")/pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == beam.smp ]] && echo "$pid"
}

rabbit_stop() {
  local n pid
  for n in "${RABBIT_NODES[@]}"; do
    if pid=$(node_pid "$n"); then
      log "stopping $(node_name "$n")"
      # A clean stop; a node that does not answer is killed by its own pid (never a broad pattern).
      rabbitmqctl_as 60 "$n" -q stop >/dev/null 2>&1 || kill -KILL "$pid" 2>/dev/null || true
      wait_until 30 "$(node_name "$n") to exit" bash -c "! kill -0 $pid" || kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -rf "$(node_dir "$n")"
  done
}

rabbit_status() {
  local n ok=0 members
  members=$(running_nodes 1 2>/dev/null || true)
  for n in "${RABBIT_NODES[@]}"; do
    if node_running "$n" && grep -qx "$(node_name "$n")" <<<"$members"; then
      echo "rabbitmq $(node_name "$n") amqp 127.0.0.1:$((AMQP_PORT_BASE + n)): up (in cluster)"
    elif node_running "$n"; then
      echo "rabbitmq $(node_name "$n") amqp 127.0.0.1:$((AMQP_PORT_BASE + n)): up, NOT in node 1's cluster"; ok=1
    else
      echo "rabbitmq $(node_name "$n") amqp 127.0.0.1:$((AMQP_PORT_BASE + n)): DOWN"; ok=1
    fi
  done
  return $ok
}

# -------------------------------------------------------------------------------------------- PostgreSQL

pg_exists() { [[ -f /etc/postgresql/$PG_VERSION/$1/postgresql.conf ]]; }
pg_online() { pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$1" status >/dev/null 2>&1; }
pg_ctl() { pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$@"; }

psql_at() {  # port sql: one value, unaligned, as postgres over TCP (trust)
  timeout 15 runuser -u postgres -- psql -h 127.0.0.1 -p "$1" -U postgres -d postgres -XAtq -c "$2"
}

in_recovery() { [[ $(psql_at "$1" 'SELECT pg_is_in_recovery()' 2>/dev/null) == t ]]; }
is_primary() { [[ $(psql_at "$1" 'SELECT pg_is_in_recovery()' 2>/dev/null) == f ]]; }
standby_sync() {
  [[ $(psql_at "$PG_PRIMARY_PORT" \
    "SELECT sync_state FROM pg_stat_replication WHERE application_name = '$PG_STANDBY'" 2>/dev/null) == sync ]]
}

pg_answer() { psql_at "$PG_PRIMARY_PORT" 'SELECT 1' && psql_at "$PG_STANDBY_PORT" 'SELECT 1'; }
pg_healthy() { is_primary "$PG_PRIMARY_PORT" && in_recovery "$PG_STANDBY_PORT" && standby_sync; }

# A cluster of ours: data and log under $BASE, started by hand only (never by the machine's postgresql.service).
create_pg_cluster() {  # name port
  local name=$1 port=$2 conf=/etc/postgresql/$PG_VERSION/$1
  install -d -o rabbitmq -g rabbitmq -m 0755 "$BASE"
  install -d -o postgres -g postgres -m 0755 "$PG_DIR"
  pg_createcluster --start-conf=manual -p "$port" -d "$PG_DIR/$name" -l "$PG_DIR/$name.log" \
    "$PG_VERSION" "$name" >/dev/null
  # Trust over loopback and the socket, replication included: the tests connect as postgres without a password.
  cat >"$conf/pg_hba.conf" <<'EOF'
local   all          all                 trust
host    all          all   127.0.0.1/32  trust
host    all          all   ::1/128       trust
local   replication  all                 trust
host    replication  all   127.0.0.1/32  trust
host    replication  all   ::1/128       trust
EOF
  cat >"$conf/conf.d/luster.conf" <<EOF
listen_addresses = '127.0.0.1'
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = 256MB
hot_standby = on
EOF
  chown -R postgres:postgres "$conf"
}

create_primary() {
  log "creating $PG_VERSION/$PG_PRIMARY on 127.0.0.1:$PG_PRIMARY_PORT"
  create_pg_cluster "$PG_PRIMARY" "$PG_PRIMARY_PORT"
  # Only the primary waits for a standby: a commit returns once luster_standby has flushed it. The standby's
  # config has none of this, so once promoted (with no standby of its own) its commits do not hang.
  cat >"/etc/postgresql/$PG_VERSION/$PG_PRIMARY/conf.d/synchronous.conf" <<EOF
synchronous_standby_names = 'FIRST 1 ($PG_STANDBY)'
synchronous_commit = on
EOF
  chown postgres:postgres "/etc/postgresql/$PG_VERSION/$PG_PRIMARY/conf.d/synchronous.conf"
  pg_ctl "$PG_PRIMARY" start
  wait_until 30 "the primary to accept connections" is_primary "$PG_PRIMARY_PORT"
}

create_standby() {
  local data=$PG_DIR/$PG_STANDBY
  log "creating $PG_VERSION/$PG_STANDBY on 127.0.0.1:$PG_STANDBY_PORT from a base backup of the primary"
  create_pg_cluster "$PG_STANDBY" "$PG_STANDBY_PORT"
  # Replace initdb's data directory by a copy of the primary's; -R writes standby.signal and primary_conninfo,
  # with our application_name in it: the name synchronous_standby_names waits for.
  find "$data" -mindepth 1 -delete
  timeout 300 runuser -u postgres -- pg_basebackup -d \
    "host=127.0.0.1 port=$PG_PRIMARY_PORT user=postgres application_name=$PG_STANDBY" \
    -D "$data" -R -X stream -c fast
  grep -q "application_name=$PG_STANDBY" "$data/postgresql.auto.conf" ||
    die "pg_basebackup -R wrote no application_name=$PG_STANDBY into primary_conninfo"
  pg_ctl "$PG_STANDBY" start
  wait_until 60 "the standby to accept connections" in_recovery "$PG_STANDBY_PORT"
}

pg_drop() {
  local name
  for name in "$PG_STANDBY" "$PG_PRIMARY"; do
    if pg_exists "$name"; then
      log "dropping $PG_VERSION/$name"
      pg_dropcluster --stop "$PG_VERSION" "$name" || true
    fi
    # pg_dropcluster leaves the config directory behind when it holds files of ours (conf.d/luster.conf).
    rm -rf "/etc/postgresql/$PG_VERSION/${name:?}" "${PG_DIR:?}/$name" "$PG_DIR/$name.log"
  done
  rmdir "$PG_DIR" 2>/dev/null || true
}

pg_create() {
  create_primary
  create_standby
  wait_until 60 "the standby to be synchronous" standby_sync
  # Only now: with no synchronous standby yet, the primary's commits would wait forever.
  psql_at "$PG_PRIMARY_PORT" 'CREATE DATABASE luster' >/dev/null
}

pg_reset() {
  pg_drop
  pg_create
}

pg_start() {
  local name
  if pg_exists "$PG_PRIMARY" && pg_exists "$PG_STANDBY"; then
    for name in "$PG_PRIMARY" "$PG_STANDBY"; do
      pg_online "$name" || pg_ctl "$name" start
    done
    # A primary and a standby that streams again soon after a restart are kept; anything else (a promoted
    # standby, a diverged pair, a half-made cluster) is rebuilt from scratch: this pair holds test data only.
    wait_until 30 "both PostgreSQL clusters to answer" pg_answer || true
    if is_primary "$PG_PRIMARY_PORT" && in_recovery "$PG_STANDBY_PORT" &&
      wait_until 30 "the standby to be synchronous" standby_sync; then
      [[ $(psql_at "$PG_PRIMARY_PORT" "SELECT 1 FROM pg_database WHERE datname = 'luster'") == 1 ]] ||
        psql_at "$PG_PRIMARY_PORT" 'CREATE DATABASE luster' >/dev/null
      return 0
    fi
    log "the PostgreSQL pair is not a primary with a synchronous standby: rebuilding it"
  fi
  pg_reset
}

pg_status() {
  local ok=0
  if pg_online "$PG_PRIMARY" && is_primary "$PG_PRIMARY_PORT"; then
    echo "postgresql $PG_VERSION/$PG_PRIMARY 127.0.0.1:$PG_PRIMARY_PORT: up (primary)"
  else
    echo "postgresql $PG_VERSION/$PG_PRIMARY 127.0.0.1:$PG_PRIMARY_PORT: DOWN or not a primary"; ok=1
  fi
  if pg_online "$PG_STANDBY" && in_recovery "$PG_STANDBY_PORT"; then
    echo "postgresql $PG_VERSION/$PG_STANDBY 127.0.0.1:$PG_STANDBY_PORT: up (standby)"
  elif pg_online "$PG_STANDBY"; then
    echo "postgresql $PG_VERSION/$PG_STANDBY 127.0.0.1:$PG_STANDBY_PORT: up, PROMOTED (not a standby)"; ok=1
  else
    echo "postgresql $PG_VERSION/$PG_STANDBY 127.0.0.1:$PG_STANDBY_PORT: DOWN"; ok=1
  fi
  if standby_sync; then
    echo "postgresql replication $PG_STANDBY: sync"
  else
    echo "postgresql replication $PG_STANDBY: NOT sync"; ok=1
  fi
  return $ok
}

# ----------------------------------------------------------------------------------------------- commands

# Shell to evaluate: `eval "$(scripts/cluster.sh env)" && make run` puts the stack on the cluster.
cmd_env() {
  local urls=() n
  for n in "${RABBIT_NODES[@]}"; do urls+=("amqp://guest:guest@127.0.0.1:$((AMQP_PORT_BASE + n))/"); done
  (IFS=,; echo "export AMQP_URL='${urls[*]}'")
  echo "export DATABASE_URL='postgresql://postgres@127.0.0.1:$PG_PRIMARY_PORT,127.0.0.1:$PG_STANDBY_PORT/luster?target_session_attrs=read-write'"
}

cmd_start() {
  [[ $(id -u) == 0 ]] || die "run as root (it starts nodes as rabbitmq and clusters as postgres)"
  local started=$SECONDS
  if rabbit_healthy 2>/dev/null && pg_healthy; then
    log "already running and healthy"
    return 0
  fi
  rabbit_start
  pg_start
  log "up in $((SECONDS - started)) s"
}

cmd_stop() {
  [[ $(id -u) == 0 ]] || die "run as root"
  rabbit_stop
  pg_drop
  rm -rf "$BASE"
}

cmd_status() {
  local ok=0
  rabbit_status || ok=1
  pg_status || ok=1
  return $ok
}

case ${1:-} in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) cmd_env ;;
  pg-reset) pg_reset ;;
  *) die "usage: $0 start|stop|status|env|pg-reset" ;;
esac
