#!/usr/bin/env bash
# scripts/test.sh — the project's test command: brings up the local services the integration
# tests need (scripts/services.sh --browser: PostgreSQL, the moto server, and Debian's chromium for
# the report's rendering test), then runs `cargo test` with every argument passed through.
#
# Usage: scripts/test.sh [cargo test arguments]   e.g. scripts/test.sh --release -- --test-threads 2
# Environment handed to the tests (defaults shown):
#   MIGRATE_TEST_PG        "host=127.0.0.1 port=5432 user=postgres" (built from PGHOST/PGPORT/PGUSER)
#   MIGRATE_TEST_DYNAMODB  http://127.0.0.1:4566 (port from MOTO_PORT)
#   AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY  'test' when unset; AWS_REGION us-east-1 when unset
#   SKIP_SERVICES=1        do not run scripts/services.sh (services provided another way)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_EC2_METADATA_DISABLED="${AWS_EC2_METADATA_DISABLED:-true}"

if [ "${SKIP_SERVICES:-0}" != 1 ]; then
  scripts/services.sh --browser
fi

export MIGRATE_TEST_PG="${MIGRATE_TEST_PG:-host=${PGHOST:-127.0.0.1} port=${PGPORT:-5432} user=${PGUSER:-postgres}}"
export MIGRATE_TEST_DYNAMODB="${MIGRATE_TEST_DYNAMODB:-http://127.0.0.1:${MOTO_PORT:-4566}}"
printf '[test] MIGRATE_TEST_PG="%s" MIGRATE_TEST_DYNAMODB=%s\n' "$MIGRATE_TEST_PG" "$MIGRATE_TEST_DYNAMODB"

command -v cargo >/dev/null 2>&1 || { echo "[test] ERROR: cargo not found" >&2; exit 1; }
exec cargo test --no-fail-fast "$@"
