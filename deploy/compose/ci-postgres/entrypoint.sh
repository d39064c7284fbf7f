#!/bin/sh
# Initialises an empty data folder once (the superuser, its password, the first database and the
# scripts in /docker-entrypoint-initdb.d), then runs PostgreSQL in the foreground. Refuses to start
# when a required variable is missing, naming it; the password is never printed.
set -eu

missing=""
for name in POSTGRES_USER POSTGRES_PASSWORD POSTGRES_DB; do
  eval "value=\${$name:-}"
  [ -n "$value" ] || missing="$missing $name"
done
if [ -n "$missing" ]; then
  echo "postgres: refusing to start, required variable(s) not set:$missing" >&2
  exit 64
fi

# The marker is written last: a folder without it is a start that failed midway, made again.
initialised="$PGDATA/.initialised"
if [ ! -e "$initialised" ]; then
  mkdir -p "$PGDATA"
  find "$PGDATA" -mindepth 1 -delete
  password_file="$(mktemp)"
  trap 'rm -f "$password_file"' EXIT
  printf '%s\n' "$POSTGRES_PASSWORD" >"$password_file"
  initdb --username="$POSTGRES_USER" --pwfile="$password_file" --auth-local=trust \
    --auth-host=scram-sha-256 --encoding=UTF8 >/dev/null
  rm -f "$password_file"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  # Only the local socket while the first database and the init scripts are made.
  pg_ctl --silent --wait --options="-c listen_addresses=''" start
  createdb --username="$POSTGRES_USER" "$POSTGRES_DB"
  for script in /docker-entrypoint-initdb.d/*.sh; do
    [ -e "$script" ] || continue
    echo "postgres: running $script"
    sh "$script"
  done
  pg_ctl --silent --wait --mode=fast stop
  touch "$initialised"
fi

exec postgres -c listen_addresses='*'
