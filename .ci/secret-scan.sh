#!/usr/bin/env bash
# Credential scan of every tracked file against the audited baseline (.ci/secret_scan.py).
# After reviewing a false positive, regenerate the baseline and mark it "is_secret": false:
#   git ls-files -z -- ':!.secrets.baseline' | xargs -0 .venv/bin/detect-secrets scan > .secrets.baseline
set -euo pipefail
cd "$(dirname "$0")/.."
"${BIN:-.venv/bin}/python" .ci/secret_scan.py
