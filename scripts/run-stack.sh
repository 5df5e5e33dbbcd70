#!/usr/bin/env bash
# Run the api, the worker and the monitor in the foreground; Ctrl-C (or SIGTERM) stops all three gracefully.
set -uo pipefail
PY=${PY:-.venv/bin/python}
export PORT_API=${PORT_API:-8000} PORT_MONITOR=${PORT_MONITOR:-8001}
export ADMIN_PASSWORD=${ADMIN_PASSWORD:-luster-dev}
# A developer's webhook receiver runs on this machine: local development allows private targets.
export WEBHOOK_ALLOW_PRIVATE_TARGETS=${WEBHOOK_ALLOW_PRIVATE_TARGETS:-true}

# A development key of its own each run (premium, the default limits): the quick start needs one.
key_output=$("$PY" -m services.api.apikeys create --owner dev --plan premium --name "make run") || exit 1
export LUSTER_API_KEY=${key_output##*$'\n'}

pids=()
start() {  # name port-or-empty
  if [[ -n $2 ]]; then PORT=$2 "$PY" -m "services.$1" & else "$PY" -m "services.$1" & fi
  pids+=($!)
}

stop() {
  trap - INT TERM
  echo; echo "luster: stopping (${pids[*]})"
  kill -TERM "${pids[@]}" 2>/dev/null
  wait "${pids[@]}" 2>/dev/null
  exit 0
}
trap stop INT TERM

start api "$PORT_API"
start worker ""
start monitor "$PORT_MONITOR"

cat <<MSG

  Luster is running (Ctrl-C stops everything):
    API         http://127.0.0.1:$PORT_API          (docs: http://127.0.0.1:$PORT_API/docs)
    Monitor     http://127.0.0.1:$PORT_MONITOR/health
    Dashboard   http://127.0.0.1:$PORT_MONITOR/admin/dashboard   (user admin, password \$ADMIN_PASSWORD: $ADMIN_PASSWORD)
    RabbitMQ    ${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}

  A development API key (owner dev, premium plan), for this shell:
    export LUSTER_API_KEY=$LUSTER_API_KEY

MSG
# Any one service exiting brings the others down too: a half-running stack would mislead.
wait -n "${pids[@]}"
echo "luster: a service exited; stopping the rest" >&2
stop
