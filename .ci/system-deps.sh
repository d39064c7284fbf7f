#!/usr/bin/env bash
# Debian packages the integration tests use: PostgreSQL (real storage tests), Chromium (UI and
# report tests), docker-compose (compose file validation), and a local Docker engine with the
# `mlops-base:local` image (serving tests; .ci/docker-engine.sh). Idempotent: installs only what
# is missing, and only as root; otherwise it says what is missing and leaves the decision to you.
set -euo pipefail

declare -A wanted=(
  [initdb]=postgresql
  [chromium]=chromium
  [docker-compose]=docker-compose
)
missing=()
for binary in "${!wanted[@]}"; do
  if ! command -v "$binary" >/dev/null 2>&1 && ! compgen -G "/usr/lib/postgresql/*/bin/$binary" >/dev/null; then
    missing+=("${wanted[$binary]}")
  fi
done
if [ "$(id -u)" -ne 0 ]; then
  if [ ${#missing[@]} -gt 0 ]; then
    echo "system-deps: missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
  fi
  docker info >/dev/null 2>&1 || echo "system-deps: no Docker daemon answers; run .ci/docker-engine.sh as root" >&2
  exit 0
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "system-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
bash "$(dirname "$0")/docker-engine.sh"
