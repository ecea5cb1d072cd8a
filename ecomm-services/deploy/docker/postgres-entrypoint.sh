#!/bin/sh
# Entrypoint of ecomm-postgres:local (busybox sh; runs as the unprivileged `postgres` user).
# First start: initdb into $PGDATA with the superuser password from $POSTGRES_PASSWORD (or the
# file named by $POSTGRES_PASSWORD_FILE, e.g. a Swarm secret), scram-sha-256 over TCP from any
# address (the database network is the boundary), trust on the local socket only.
# Every start: exec postgres in the foreground listening on all addresses, port 5432.
# Extra arguments are passed to postgres (e.g. `-c max_connections=200`).
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
    POSTGRES_PASSWORD=$(cat "$POSTGRES_PASSWORD_FILE")
  fi
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "postgres-entrypoint: set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE (the superuser's password)" >&2
    exit 2
  fi
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb -D "$PGDATA" -U postgres --pwfile="$pwfile" --encoding=UTF8 --locale=C \
    --auth-local=trust --auth-host=scram-sha-256 >/tmp/initdb.log 2>&1 \
    || { cat /tmp/initdb.log >&2; rm -f "$pwfile"; exit 1; }
  rm -f "$pwfile"
  printf 'host all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  echo "postgres-entrypoint: initialised $PGDATA" >&2
fi

exec postgres -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/run/postgresql "$@"
