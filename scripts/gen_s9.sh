#!/usr/bin/env bash
# scripts/gen_s9.sh — (re)build the legacy S9 sample database in PostgreSQL.
#
# Drops and recreates the database, creates msg_anag and msg with the columns of the legacy S9 schema and
# fills them entirely in SQL (scripts/gen_s9.sql): the same seed and sizes give the same data.
# A documented share of the rows exercises every rule and mapping of the README's "Mapping and rules" (the list of
# cases and their shares is the comment at the top of scripts/gen_s9.sql). The expected outcome
# of every row (valid / rejected / skipped, reasons, warnings) lands in s9_gen.expected, a
# schema the migration does not read; a summary of it is printed at the end.
#
# Also creates (if missing) the read-only login role migration_user, password $DB_PASSWORD
# (default 'migration'), and grants it CONNECT, USAGE and SELECT on the new database only.
#
# Usage: scripts/gen_s9.sh [--db NAME] [--buyers N] [--producers N] [--sales N] [--seed S]
#                          [--host H] [--port P] [--user U] [--role NAME] [--no-role] [--jobs N] [--quiet]
#   --db NAME       database to (re)create (default s9); it is DROPPED first
#   --buyers N      rows of kind 2/3 in msg_anag (default 1250; about 70% companies)
#   --producers N   rows of kind 1 in msg_anag (default 430)
#   --sales N       rows in msg (default 8542)
#   --seed S        integer seed (default 42)
#   --host/--port/--user   server and admin user (default $PGHOST/$PGPORT/$PGUSER, else
#                   127.0.0.1 / 5432 / postgres); the user needs CREATEDB and CREATEROLE
#   --role NAME     the read-only role to create/grant (default migration_user)
#   --no-role       do not create or grant the role
#   --jobs N        sessions generating sales at once (default: the number of CPUs, at most 4;
#                   1 below 20,000 sales); the data does not depend on it
#   --quiet         print progress lines only, not the summary of the data
# Environment: DB_PASSWORD (the role's password, default 'migration'), PGPASSWORD for the admin user.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SQL="$ROOT/scripts/gen_s9.sql"

DB=s9 BUYERS=1250 PRODUCERS=430 SALES=8542 SEED=42
HOST="${PGHOST:-127.0.0.1}" PORT="${PGPORT:-5432}" ADMIN="${PGUSER:-postgres}"
ROLE=migration_user DO_ROLE=1 QUIET=0 JOBS=
ROLE_PASSWORD="${DB_PASSWORD:-migration}"

say()  { printf '[gen_s9] %s\n' "$*"; }
die()  { printf '[gen_s9] ERROR: %s\n' "$*" >&2; exit 1; }
usage() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "${BASH_SOURCE[0]}"; }

need_value() { { [ $# -ge 2 ] && [ -n "$2" ]; } || die "$1 needs a value"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --db) need_value "$@"; DB="$2"; shift 2 ;;
    --buyers) need_value "$@"; BUYERS="$2"; shift 2 ;;
    --producers) need_value "$@"; PRODUCERS="$2"; shift 2 ;;
    --sales) need_value "$@"; SALES="$2"; shift 2 ;;
    --seed) need_value "$@"; SEED="$2"; shift 2 ;;
    --host) need_value "$@"; HOST="$2"; shift 2 ;;
    --port) need_value "$@"; PORT="$2"; shift 2 ;;
    --user) need_value "$@"; ADMIN="$2"; shift 2 ;;
    --role) need_value "$@"; ROLE="$2"; shift 2 ;;
    --no-role) DO_ROLE=0; shift ;;
    --jobs) need_value "$@"; JOBS="$2"; shift 2 ;;
    --quiet) QUIET=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

is_count() { case "$1" in ''|*[!0-9]*) return 1 ;; *) [ "${#1}" -le 10 ] ;; esac; }
{ is_count "$BUYERS" && [ "$BUYERS" -lt 2000000 ]; } || die "--buyers must be an integer from 0 to 1999999, got '$BUYERS'"
{ is_count "$PRODUCERS" && [ "$PRODUCERS" -lt 7000000 ]; } || die "--producers must be an integer from 0 to 6999999, got '$PRODUCERS'"
{ is_count "$SALES" && [ "$SALES" -le 2000000000 ]; } || die "--sales must be an integer from 0 to 2000000000, got '$SALES'"
case "$SEED" in ''|-|*[!0-9-]*|?*-*) die "--seed must be an integer, got '$SEED'" ;; esac
[ "${#SEED}" -le 18 ] || die "--seed is too long"
is_count "$PORT" || die "--port must be a number, got '$PORT'"
[[ "$DB" =~ ^[A-Za-z_][A-Za-z0-9_-]{0,62}$ ]] || die "--db must be letters, digits, _ or - (at most 63), got '$DB'"
case "$DB" in postgres|template0|template1) die "refusing to drop the system database '$DB'" ;; esac
[[ "$ROLE" =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || die "--role must be a plain lower-case identifier, got '$ROLE'"
if [ -z "$JOBS" ]; then
  JOBS="$(nproc 2>/dev/null || echo 1)"
  [ "$JOBS" -le 4 ] || JOBS=4
  [ "$SALES" -ge 20000 ] || JOBS=1
fi
{ is_count "$JOBS" && [ "$JOBS" -ge 1 ] && [ "$JOBS" -le 64 ]; } || die "--jobs must be from 1 to 64, got '$JOBS'"
[ -f "$SQL" ] || die "missing $SQL"
command -v psql >/dev/null 2>&1 || die "psql not found: run scripts/services.sh (it installs the PostgreSQL client) or install postgresql-client"

PSQL=(psql -X -q -w -v ON_ERROR_STOP=1 -h "$HOST" -p "$PORT" -U "$ADMIN")
now_ms() { date +%s%3N; }

version_num="$("${PSQL[@]}" -d postgres -Atc 'show server_version_num' 2>/dev/null)" \
  || die "cannot connect to PostgreSQL at $HOST:$PORT as '$ADMIN' (is it running? scripts/services.sh starts it; PGPASSWORD for a password)"
[ "$version_num" -ge 110000 ] || die "PostgreSQL 11 or later is needed (server_version_num $version_num)"

t0="$(now_ms)"
say "recreating database '$DB' on $HOST:$PORT (seed $SEED: $BUYERS buyers, $PRODUCERS producers, $SALES sales; $JOBS session(s))"
if [ "$version_num" -ge 130000 ]; then
  "${PSQL[@]}" -d postgres -v db="$DB" <<'SQL'
SET client_min_messages = warning;
DROP DATABASE IF EXISTS :"db" WITH (FORCE);
SQL
else
  "${PSQL[@]}" -d postgres -v db="$DB" <<'SQL'
SET client_min_messages = warning;
SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :'db' AND pid <> pg_backend_pid();
DROP DATABASE IF EXISTS :"db";
SQL
fi
# UTF8 whatever the cluster's default; the C locale exists everywhere and keeps sorting byte-wise.
"${PSQL[@]}" -d postgres -v db="$DB" <<'SQL'
CREATE DATABASE :"db" TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C';
SQL

GEN=("${PSQL[@]}" -d "$DB" -v seed="$SEED" -v buyers="$BUYERS" -v producers="$PRODUCERS" -v sales="$SALES" -f "$SQL")
"${GEN[@]}" -v step=setup
# The sales in $JOBS slices, one session each, at once.
pids=()
for part in $(seq 1 "$JOBS"); do
  "${GEN[@]}" -v step=sales -v part="$part" -v parts="$JOBS" &
  pids+=("$!")
done
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
[ "$failed" = 0 ] || die "generating the sales failed (messages above)"
"${GEN[@]}" -v step=finish
t1="$(now_ms)"

if [ "$DO_ROLE" = 1 ]; then
  # The password travels inside a statement: fine for a development server; on a shared one
  # create the role yourself and pass --no-role.
  "${PSQL[@]}" -d postgres -v role="$ROLE" -v pw="$ROLE_PASSWORD" -v db="$DB" <<'SQL'
SET client_min_messages = warning;
SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD %L', :'role', :'pw')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role')
\gexec
-- An existing role keeps its attributes; only its password is set, so the demo can log in.
SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', :'role', :'pw')
\gexec
-- Belt and braces: the tool only ever reads.
ALTER ROLE :"role" SET default_transaction_read_only = on;
GRANT CONNECT ON DATABASE :"db" TO :"role";
SQL
  "${PSQL[@]}" -d "$DB" -v role="$ROLE" <<'SQL'
SET client_min_messages = warning;
REVOKE ALL ON SCHEMA s9_gen FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"role";
GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"role";
SQL
fi
t2="$(now_ms)"

secs() { awk -v ms="$1" 'BEGIN { printf "%.1f", ms / 1000 }'; }
if [ "$QUIET" = 0 ]; then
  "${PSQL[@]}" -d "$DB" -P footer=off <<'SQL'
\pset null ''
\echo
\echo 'Rows generated (msg_anag by kind; kind 1 producer, 2 company, 3 private, others internal):'
SELECT 'msg_anag' AS "table", kind, count(*) AS rows, count(*) FILTER (WHERE enabled) AS enabled
FROM msg_anag GROUP BY kind
UNION ALL
SELECT 'msg', NULL, count(*), count(*) FILTER (WHERE enabled) FROM msg
ORDER BY 1 DESC, 2;

\echo 'Expected outcome per entity (the validation rules applied to the generated rows; skipped = not extracted):'
SELECT entity,
       count(*) FILTER (WHERE outcome <> 'skipped') AS extracted,
       count(*) FILTER (WHERE outcome = 'valid') AS valid,
       count(*) FILTER (WHERE outcome = 'valid' AND cardinality(warnings) > 0) AS "valid with warnings",
       count(*) FILTER (WHERE outcome = 'rejected') AS rejected,
       count(*) FILTER (WHERE outcome = 'skipped') AS skipped
FROM s9_gen.expected WHERE entity <> 'internal' GROUP BY entity ORDER BY 1;

\echo 'Rejected records by reason (a record with two reasons counts under both):'
SELECT entity, r AS reason, count(*) AS records
FROM s9_gen.expected, unnest(reasons) AS r WHERE outcome = 'rejected'
GROUP BY 1, 2 ORDER BY 1, 2;

\echo 'Warnings on kept records by reason:'
SELECT entity, w AS warning, count(*) AS records
FROM s9_gen.expected, unnest(warnings) AS w WHERE outcome = 'valid'
GROUP BY 1, 2 ORDER BY 1, 2;

\echo 'Spot checks:'
SELECT 'DST-edge timestamps (2024-03-31 02:30 / 2024-10-27 02:30)' AS "check",
       (SELECT count(*) FROM msg_anag WHERE created_at = '2024-03-31 02:30' OR updated_at = '2024-10-27 02:30')
     + (SELECT count(*) FROM msg WHERE created_at = '2024-03-31 02:30' OR updated_at = '2024-10-27 02:30') AS rows
UNION ALL
SELECT 'descriptions over 400,000 bytes', count(*) FROM msg WHERE octet_length(description) > 400000
UNION ALL
SELECT 'cases without rows at this size (see s9_gen.case_summary)', count(*) FROM s9_gen.case_summary WHERE rows = 0
UNION ALL
SELECT 'rows whose outcome differs from their case''s intent', coalesce(sum(differing), 0) FROM s9_gen.case_summary;
SQL
fi

differing="$("${PSQL[@]}" -d "$DB" -Atc 'SELECT coalesce(sum(differing), 0) FROM s9_gen.case_summary')"
[ "$differing" = 0 ] || say "WARNING: $differing rows do not have the outcome their case intends: SELECT * FROM s9_gen.case_summary WHERE differing > 0"
size="$("${PSQL[@]}" -d "$DB" -Atc 'SELECT pg_size_pretty(pg_database_size(current_database()))')"
say "database '$DB' ready ($size): generated in $(secs $((t1 - t0)))s, total $(secs $((t2 - t0)))s"
if [ "$DO_ROLE" = 1 ]; then
  say "read-only login: role '$ROLE' (password from DB_PASSWORD, default 'migration') on $HOST:$PORT/$DB"
fi
say "per-row expectations: SELECT * FROM s9_gen.expected; cases: SELECT * FROM s9_gen.case_summary"
