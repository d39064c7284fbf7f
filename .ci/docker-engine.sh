#!/usr/bin/env bash
# Start a local Docker engine for the serving tests and build the base image `mlops-base:local`.
# Idempotent: installs docker.io/debootstrap only if missing, reuses a running daemon and an
# existing base image. Needs root. No registry is reachable in CI, so the base image is a Debian
# bookworm root file system made with debootstrap from the apt mirror, imported into Docker.
set -euo pipefail

STATE_DIR="${MLOPS_DOCKER_STATE_DIR:-/var/tmp/mlops-docker}"
PIDFILE="$STATE_DIR/dockerd.pid"
LOGFILE="$STATE_DIR/dockerd.log"
BASE_IMAGE="${MLOPS_BASE_IMAGE:-mlops-base:local}"
SUITE=bookworm

if [ "$(id -u)" -ne 0 ]; then
  echo "docker-engine.sh must run as root" >&2
  exit 1
fi
mkdir -p "$STATE_DIR"

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if docker info >/dev/null 2>&1; then
  echo "a Docker daemon already answers"
else
  if [ -f "$PIDFILE" ] && { tr '\0' ' ' <"/proc/$(cat "$PIDFILE")/cmdline"; } 2>/dev/null | grep -q '^dockerd '; then
    echo "dockerd (pid $(cat "$PIDFILE")) is starting"
  else
    echo "starting dockerd (log: $LOGFILE)"
    nohup dockerd --bridge=none --iptables=false >"$LOGFILE" 2>&1 &
    echo $! >"$PIDFILE"
  fi
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || { echo "dockerd did not answer within 60 s; see $LOGFILE" >&2; tail -20 "$LOGFILE" >&2; exit 1; }
fi

if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  echo "base image $BASE_IMAGE exists"
  exit 0
fi
mirror=$(grep -h -m1 -E '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
  | grep -o -E 'https?://[^ ]+' | head -n1 || true)
mirror="${mirror:-http://deb.debian.org/debian}"
rootfs=$(mktemp -d "$STATE_DIR/rootfs.XXXXXX")
trap 'rm -rf "$rootfs"' EXIT
echo "debootstrap $SUITE from $mirror"
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
  "$SUITE" "$rootfs" "$mirror" >"$STATE_DIR/debootstrap.log" 2>&1 \
  || { tail -20 "$STATE_DIR/debootstrap.log" >&2; exit 1; }
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | docker import - "$BASE_IMAGE" >/dev/null
echo "built $BASE_IMAGE ($(docker image inspect -f '{{.Size}}' "$BASE_IMAGE") bytes)"
