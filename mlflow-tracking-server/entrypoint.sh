#!/bin/sh
# Start `mlflow server` once PostgreSQL answers. Refuses to start when a required variable is
# missing, naming it. Secrets are read from the environment only and never printed.
set -eu

missing=""
for name in POSTGRES_HOST POSTGRES_USER POSTGRES_PASSWORD MLFLOW_DB MLFLOW_ARTIFACTS_DESTINATION \
            AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY; do
  eval "value=\${$name:-}"
  [ -n "$value" ] || missing="$missing $name"
done
if [ -n "$missing" ]; then
  echo "mlflow-tracking-server: refusing to start, required variable(s) not set:$missing" >&2
  exit 64
fi

POSTGRES_PORT="${POSTGRES_PORT:-5432}"
attempt=0
until python - <<PY
import socket, sys
try:
    socket.create_connection(("${POSTGRES_HOST}", int("${POSTGRES_PORT}")), timeout=3).close()
except OSError:
    sys.exit(1)
PY
do
  attempt=$((attempt + 1))
  if [ "$attempt" -ge 30 ]; then
    echo "mlflow-tracking-server: PostgreSQL at ${POSTGRES_HOST}:${POSTGRES_PORT} did not answer; giving up" >&2
    exit 69
  fi
  delay=$((attempt < 10 ? attempt : 10))
  echo "mlflow-tracking-server: waiting for PostgreSQL at ${POSTGRES_HOST}:${POSTGRES_PORT} (retry in ${delay}s)" >&2
  sleep "$delay"
done

export MLFLOW_BACKEND_STORE_URI="postgresql://${POSTGRES_USER}:${POSTGRES_PASSWORD}@${POSTGRES_HOST}:${POSTGRES_PORT}/${MLFLOW_DB}"
exec mlflow server \
  --host 0.0.0.0 --port 5000 --workers "${MLFLOW_WORKERS:-2}" \
  --backend-store-uri "$MLFLOW_BACKEND_STORE_URI" \
  --artifacts-destination "$MLFLOW_ARTIFACTS_DESTINATION" \
  --serve-artifacts \
  --allowed-hosts "${MLFLOW_ALLOWED_HOSTS:-mlflow,mlflow:5000,localhost,localhost:*,127.0.0.1,127.0.0.1:*}"
