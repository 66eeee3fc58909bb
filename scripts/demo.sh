#!/usr/bin/env bash
# scripts/demo.sh — the one-command demo of `migrate`:
#   1. brings up PostgreSQL and the moto DynamoDB server (scripts/services.sh);
#   2. rebuilds the sample S9 database 's9' at the default sizes (scripts/gen_s9.sh);
#   3. builds the release binary (cargo build --release);
#   4. recreates the target tables named in the config, empty (migrate tables create --recreate);
#   5. clears the artifacts of the previous demo under data/ (data/README.md stays);
#   6. runs ./target/release/migrate --full --config config.example.json, prints the path of the
#      HTML report it wrote (data/reports/report.html) and exits with its status.
#
# Usage: scripts/demo.sh [extra migrate arguments, e.g. --verbose]
# Environment: DB_PASSWORD (default 'migration'; the password gen_s9.sh gives migration_user and
#   the config reads), DEMO_CONFIG (default config.example.json), SKIP_SERVICES=1 to use services
#   that are already running; AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY default to 'test' (the local
#   endpoint accepts anything).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CONFIG="${DEMO_CONFIG:-config.example.json}"
say() { printf '\n[demo] %s\n' "$*"; }
die() { printf '[demo] ERROR: %s\n' "$*" >&2; exit 1; }
[ -f "$CONFIG" ] || die "config file not found: $CONFIG"

export DB_PASSWORD="${DB_PASSWORD:-migration}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_EC2_METADATA_DISABLED="${AWS_EC2_METADATA_DISABLED:-true}"

if [ "${SKIP_SERVICES:-0}" != 1 ]; then
  say "1/6 local services"
  scripts/services.sh
fi

say "2/6 sample S9 database"
scripts/gen_s9.sh --db s9

say "3/6 cargo build --release"
command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (rustup) first"
cargo build --release

say "4/6 target tables (recreated empty, from the entities' definitions: docs/tables.md)"
./target/release/migrate tables create --recreate --config "$CONFIG"

say "5/6 clearing the previous demo's artifacts under data/"
if [ -d data ]; then
  find data -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf -- {} +
fi

say "6/6 ./target/release/migrate --full --config $CONFIG $*"
status=0
./target/release/migrate --full --config "$CONFIG" "$@" || status=$?
say "migrate exited with status $status"
if [ -f data/reports/report.html ]; then
  say "report: $ROOT/data/reports/report.html (open it in a browser)"
fi
exit "$status"
