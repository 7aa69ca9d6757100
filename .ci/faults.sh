# shellcheck shell=bash disable=SC2154
# The fault-injection suite (docs/reliability.md), sourced by `bash scripts/up --faults` once every
# service is ready: it keeps a steady bid and watch load going through the gateway (gavel-load),
# breaks one thing at a time, measures how long until every service is ready again, checks that
# every watcher converged (no event missing or out of order), and then has `gavel-admin check`
# compare what the clients were told with the databases and the chain. Fails on any violation.
# Uses scripts/up's variables and functions: state, profile, pg, db_prefix, pid_of, restart.

FAULT_READY_DEADLINE=60

# all_ready — every service answers /readyz.
all_ready() {
  local port
  for port in 9080 9081 9082 9083 9084; do
    curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null || return 1
  done
}

# recovered WHAT STARTED — waits for every service to be ready again and prints how long it took.
recovered() {
  local what=$1 started=$2
  if ! wait_for "every service ready after: $what" "$FAULT_READY_DEADLINE" all_ready; then
    tail -n 30 "$state"/logs/*.log >&2
    return 1
  fi
  printf '| %s | %.1f s |\n' "$what" "$(echo "$(date +%s.%N) - $started" | bc)" >>"$state/faults/recovery.md"
}

# kill_and_restart NAME — SIGKILL, then start it again the same way.
kill_and_restart() {
  local name=$1 started
  started=$(date +%s.%N)
  kill -KILL "${pid_of[$name]}"
  wait "${pid_of[$name]}" 2>/dev/null || true
  restart "$name"
  recovered "$name killed (SIGKILL) and restarted" "$started"
}

run_faults() {
  command -v bc >/dev/null || apt_install bc
  command -v redis-cli >/dev/null || apt_install redis-tools
  mkdir -p "$state/faults"
  printf '| fault | ready again after |\n|---|---|\n' >"$state/faults/recovery.md"
  local acks="$state/faults/acks.jsonl" load_log="$state/logs/faults-load.log"
  log "fault suite: a steady load (gavel-load many: 40 bids/s on 20 lots, 10 of which end during it, 40 watchers) for 130 s"
  "target/$profile/gavel-load" many --rate 40 --duration 130 --lots 20 --bidders 80 --watchers 40 \
    --lots-end 60 --reconnect --acks "$acks" --out "$state/faults" >"$load_log" 2>&1 &
  local load=$!
  pids+=("$load") # stopped with the services if the suite fails half-way
  wait_for "the load to start bidding" 120 grep -q 'subscribed; bidding' "$load_log" || {
    tail -n 20 "$load_log" >&2
    return 1
  }
  local started
  # The schedule: a few seconds of steady load between faults, one fault at a time.
  sleep 5
  log "fault: bids SIGKILLed mid-bid, restarted"
  kill_and_restart bids
  sleep 4
  log "fault: wallets SIGKILLed mid-hold, restarted"
  kill_and_restart wallets
  sleep 4
  log "fault: bids paused (SIGSTOP) for 8 s, beyond the gateway's and wallets' timeouts"
  started=$(date +%s.%N)
  kill -STOP "${pid_of[bids]}"
  sleep 8
  kill -CONT "${pid_of[bids]}"
  recovered "bids paused for 8 s (SIGSTOP, SIGCONT)" "$started"
  sleep 4
  log "fault: bids' events held back for 15 s, past the 10 s repair grace (bids restarted without the broker, then with it)"
  started=$(date +%s.%N)
  kill -TERM "${pid_of[bids]}"
  wait "${pid_of[bids]}" 2>/dev/null || true
  restart bids GAVEL_BROKER__URL="amqp://guest:guest@127.0.0.1:1/%2f"
  sleep 15
  kill -TERM "${pid_of[bids]}"
  wait "${pid_of[bids]}" 2>/dev/null || true
  restart bids
  recovered "bids' events held back for 15 s" "$started"
  sleep 4
  log "fault: RabbitMQ restarted (every connection dropped)"
  started=$(date +%s.%N)
  $SUDO rabbitmqctl -q stop_app >/dev/null
  $SUDO rabbitmqctl -q start_app >/dev/null
  recovered "RabbitMQ restarted" "$started"
  sleep 4
  log "fault: PostgreSQL restarted (every service's connections dropped)"
  started=$(date +%s.%N)
  local version
  version=$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf "%f\n" | sort -V | tail -n 1)
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main restart -m fast
  recovered "PostgreSQL restarted" "$started"
  sleep 4
  log "fault: Redis flushed (rate limits, caches, presence)"
  started=$(date +%s.%N)
  redis-cli --scan --pattern 'gavel:*' | xargs -r redis-cli del >/dev/null
  recovered "Redis flushed" "$started"
  sleep 4
  log "fault: lots and notifier SIGKILLed, restarted"
  kill_and_restart lots
  kill_and_restart notifier
  sleep 4
  # The last fault must still land while the clients bid, or it tests nothing.
  if ! kill -0 "$load" 2>/dev/null || grep -q '^answers as the clients saw them' "$load_log"; then
    log "the load ended before the last fault: lengthen its --duration"
    return 1
  fi
  log "fault: gateway-ws SIGKILLed: every client cut off mid-stream (they connect again and resume)"
  kill_and_restart gateway-ws
  local status=0
  wait "$load" || status=$?
  sed -n '/^|/p' "$load_log" | head -n 30 >&2
  log "gavel-load exited with $status (refusals are expected while services are down)"
  # Every client must have lasted the run and every watcher converged: no connection lost for
  # good, no bid left unanswered, no event missing or out of order on any connection.
  if ! python3 - "$state/faults/many.json" <<'CHECK'
import json, sys
report = json.load(open(sys.argv[1]))
keys = ("errors", "bids_unanswered", "events_missing", "events_out_of_order", "connection_failures")
problems = {key: report[key] for key in keys if report.get(key)}
if problems:
    sys.exit(f"the clients did not come through: {problems}")
CHECK
  then
    log "see $load_log"
    return 1
  fi
  log "recovery times"
  cat "$state/faults/recovery.md" >&2
  log "invariants (gavel-admin check)"
  GAVEL_DATABASE__URL="$pg/${db_prefix}_bids" GAVEL_WALLETS_DATABASE__URL="$pg/${db_prefix}_wallets" \
    GAVEL_LOTS_DATABASE__URL="$pg/${db_prefix}_lots" GAVEL_CHAIN__RPC_URL=http://127.0.0.1:8545 \
    "target/$profile/gavel-admin" check --acks "$acks" --settle 90s | tee "$state/faults/invariants.md"
  return "${PIPESTATUS[0]}"
}
