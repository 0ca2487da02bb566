#!/usr/bin/env bash
# Syntax and smoke check of the k6 scenarios with node (k6 need not be
# installed): see check.mjs.
set -euo pipefail
cd "$(dirname "$0")"
command -v node >/dev/null || { echo "node is required for the k6 script check" >&2; exit 1; }
exec node check.mjs "$@"
