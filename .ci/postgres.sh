# PostgreSQL for the ledger tests: sourced by .ci/run (and usable by hand:
#   . .ci/postgres.sh && pg_start && echo "$LLMROUTE_TEST_POSTGRES_DSN" ... pg_stop).
# A throwaway cluster in a temporary directory on a free 127.0.0.1 port, trust auth, stopped by
# pg_stop (call it from an EXIT trap so it also runs on failure).

pg_bin_dir() {
  # Where initdb and pg_ctl live: on PATH, else Debian's versioned directory.
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v pg_ctl)"; return 0
  fi
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  return 1
}

pg_install() {
  # Install the server when it is missing and apt-get is there; otherwise say so.
  pg_bin_dir >/dev/null && return 0
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "== installing postgresql (apt-get)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  pg_bin_dir >/dev/null
}

pg_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pg_as_owner() {
  # initdb and postgres refuse to run as root: run them as the data directory's owner.
  if [ "$(id -u)" = 0 ]; then runuser -u "$PG_OWNER" -- "$@"; else "$@"; fi
}

pg_start() {
  # Start a cluster and export LLMROUTE_TEST_POSTGRES_DSN; returns non-zero when impossible.
  local bin
  bin=$(pg_bin_dir) || return 1
  PG_OWNER=$(id -un)
  if [ "$(id -u)" = 0 ]; then
    PG_OWNER=postgres
    id "$PG_OWNER" >/dev/null 2>&1 || useradd --system --no-create-home "$PG_OWNER" || return 1
  fi
  PG_DATA=$(mktemp -d /tmp/llmroute-pg.XXXXXX)
  chown "$PG_OWNER" "$PG_DATA"
  PG_PORT=$(pg_free_port)
  pg_as_owner "$bin/initdb" -D "$PG_DATA/data" -U postgres --auth=trust -E UTF8 >"$PG_DATA/initdb.log" 2>&1 \
    || { cat "$PG_DATA/initdb.log" >&2; return 1; }
  pg_as_owner "$bin/pg_ctl" -D "$PG_DATA/data" -l "$PG_DATA/server.log" -w -t 30 \
    -o "-k $PG_DATA -p $PG_PORT -h 127.0.0.1 -c fsync=off" start >/dev/null \
    || { cat "$PG_DATA/server.log" >&2; return 1; }
  PG_CTL="$bin/pg_ctl"
  export LLMROUTE_TEST_POSTGRES_DSN="postgresql://postgres@127.0.0.1:$PG_PORT/postgres"
  echo "postgresql on 127.0.0.1:$PG_PORT ($PG_DATA)"
}

pg_stop_on_exit() {
  # Run pg_stop at exit, before whatever EXIT trap is already set.
  local old
  old=$(trap -p EXIT | sed -E "s/^trap -- '(.*)' EXIT$/\1/")
  # shellcheck disable=SC2064
  trap "pg_stop; ${old:-:}" EXIT
}

pg_stop() {
  # Stop the cluster started by pg_start (if any) and remove its directory.
  if [ -n "${PG_DATA:-}" ] && [ -d "$PG_DATA/data" ]; then
    pg_as_owner "$PG_CTL" -D "$PG_DATA/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  [ -n "${PG_DATA:-}" ] && rm -rf "$PG_DATA"
  PG_DATA=
}
