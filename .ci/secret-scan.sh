#!/usr/bin/env bash
# Fails when a tracked file holds something that looks like a credential and is not in the
# audited baseline (.secrets.baseline). After auditing a false positive:
#   .venv/bin/detect-secrets scan --baseline .secrets.baseline $(git ls-files)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${BIN:-.venv/bin}"
git ls-files -z | xargs -0 "$BIN/detect-secrets-hook" --baseline .secrets.baseline
echo "secret scan: no new credentials"
