#!/usr/bin/env bash
# Fails when a tracked file holds something that looks like a credential and is not in the
# audited baseline (.secrets.baseline). After auditing a false positive:
#   git ls-files -z -- ':!.secrets.baseline' | xargs -0 .venv/bin/detect-secrets scan --baseline .secrets.baseline
# then mark the reviewed finding "is_secret": false in .secrets.baseline.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${BIN:-.venv/bin}"
git ls-files -z -- ':!.secrets.baseline' | xargs -0 "$BIN/detect-secrets-hook" --baseline .secrets.baseline
echo "secret scan: no new credentials"
