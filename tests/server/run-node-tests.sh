#!/usr/bin/env bash
# Installs the locked npm packages (npm ci) when they are missing or older
# than package-lock.json, then runs the given test files with Node's
# built-in test runner.
set -euo pipefail
cd "$(dirname "$0")/node"
stamp=node_modules/.installed-package-lock.json
if ! cmp -s package-lock.json "$stamp" 2>/dev/null; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi
[ "${1:-}" = "--install-only" ] && exit 0
exec node --test --test-concurrency=1 "$@"
