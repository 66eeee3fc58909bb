#!/usr/bin/env bash
# scripts/services.sh — bring up the local services `migrate` develops and tests against:
#
#   * PostgreSQL on $PGHOST:$PGPORT (default 127.0.0.1:5432), the S9 source database server;
#   * the moto server (a DynamoDB-compatible API from PyPI, moto[server]==5.2.5) on
#     127.0.0.1:$MOTO_PORT (default 4566), run from the project-local virtualenv .venv/.
#
# Idempotent: whatever already answers is left alone. On a fresh Debian machine it
# installs PostgreSQL with apt-get (as root, or through sudo) and creates .venv/.
#
# Usage:
#   scripts/services.sh                       # start what is not running
#   scripts/services.sh --tables CONFIG.json  # ... and create the config's target tables (migrate tables create)
#   scripts/services.sh --tables CONFIG.json --recreate   # ... dropping them first (local endpoint only)
#   scripts/services.sh --status              # only report what answers where
#   scripts/services.sh --stop                # stop the moto server this script started
#   scripts/services.sh --no-postgres | --no-moto   # skip one of the two
#   scripts/services.sh --no-postgres --no-moto --venv   # only make sure .venv/ has moto and boto3
#   scripts/services.sh --browser             # ... and install Debian's chromium (tests/report.rs renders
#                                             #     the HTML report with it; skipped without it)
#
# Environment: PGHOST (127.0.0.1), PGPORT (5432), PGUSER (postgres), MOTO_PORT (4566),
#   MOTO_START_TIMEOUT (seconds, 60), PG_START_TIMEOUT (seconds, 60),
#   --tables builds and runs the release binary; the config's ${VARS} must be set (DB_PASSWORD for
#   config.example.json).
# Files: .venv/ (virtualenv), .services/moto-<port>.pid and .services/moto-<port>.log (at the project root).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MOTO_VERSION="5.2.5"
MOTO_HOST="127.0.0.1"
MOTO_PORT="${MOTO_PORT:-4566}"
MOTO_START_TIMEOUT="${MOTO_START_TIMEOUT:-60}"
PG_START_TIMEOUT="${PG_START_TIMEOUT:-60}"
export PGHOST="${PGHOST:-127.0.0.1}"
export PGPORT="${PGPORT:-5432}"
export PGUSER="${PGUSER:-postgres}"
VENV="$ROOT/.venv"
STATE="$ROOT/.services"
MOTO_PID_FILE="$STATE/moto-$MOTO_PORT.pid"
MOTO_LOG="$STATE/moto-$MOTO_PORT.log"
# Marks a pg_hba.conf this script edited (only ever on a cluster it installed or created itself).
HBA_MARKER="# migrate scripts/services.sh: local development cluster"

say()  { printf '[services] %s\n' "$*"; }
warn() { printf '[services] WARNING: %s\n' "$*" >&2; }
die()  { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

usage() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "${BASH_SOURCE[0]}"; }

DO_PG=1 DO_MOTO=1 DO_VENV=0 DO_BROWSER=0 TABLES_CONFIG="" RECREATE=0 ACTION=up
while [ $# -gt 0 ]; do
  case "$1" in
    --tables) [ $# -ge 2 ] || die "--tables needs a config file"; TABLES_CONFIG="$2"; shift 2 ;;
    --tables=*) TABLES_CONFIG="${1#*=}"; shift ;;
    --recreate) RECREATE=1; shift ;;
    --no-postgres) DO_PG=0; shift ;;
    --no-moto) DO_MOTO=0; shift ;;
    --venv) DO_VENV=1; shift ;;
    --browser) DO_BROWSER=1; shift ;;
    --status) ACTION=status; shift ;;
    --stop) ACTION=stop; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
[ "$RECREATE" = 0 ] || [ -n "$TABLES_CONFIG" ] || die "--recreate only goes with --tables CONFIG"
case "$MOTO_PORT" in ''|*[!0-9]*) die "MOTO_PORT must be a port number, got '$MOTO_PORT'" ;; esac
case "$PGPORT" in ''|*[!0-9]*) die "PGPORT must be a port number, got '$PGPORT'" ;; esac

# ---------------------------------------------------------------- helpers

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root (or sudo) to run: $*"
  fi
}

apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install $* yourself (this script knows Debian/Ubuntu only)"
  say "installing with apt-get: $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  # LANG=C.UTF-8 so that a cluster created by the package's postinst defaults to UTF-8.
  as_root env DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 LC_ALL=C.UTF-8 \
    apt-get install -y -q --no-install-recommends "$@"
}

is_local_host() { case "$1" in 127.0.0.1|localhost|::1|/*) return 0 ;; *) return 1 ;; esac; }

# Whether something accepts TCP connections on host:port (bash's /dev/tcp, no tools needed).
tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

pg_answers() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h "$PGHOST" -p "$PGPORT" -t 3
  else
    tcp_open "$PGHOST" "$PGPORT"
  fi
}

pg_login_ok() { psql -X -q -w -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -d postgres -Atc 'select 1' >/dev/null 2>&1; }

# Whether an HTTP server answers at the URL (any status, 4xx/5xx included, counts).
http_answers() {
  local url="$1" py
  py="$(command -v python3 || true)"
  if [ -n "$py" ]; then
    "$py" - "$url" <<'PY' 2>/dev/null
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1], timeout=3)
except urllib.error.HTTPError:
    pass            # an HTTP answer, even an error status, means the server is up
except Exception:
    sys.exit(1)
PY
  elif command -v curl >/dev/null 2>&1; then
    curl -s -o /dev/null --max-time 3 "$url"
  else
    tcp_open "$MOTO_HOST" "$MOTO_PORT"
  fi
}

moto_url() { printf 'http://%s:%s' "$MOTO_HOST" "$MOTO_PORT"; }

# The pid in .services/moto.pid when that process is alive and really is our moto_server.
our_moto_pid() {
  [ -f "$MOTO_PID_FILE" ] || return 1
  local pid
  pid="$(cat "$MOTO_PID_FILE" 2>/dev/null || true)"
  case "$pid" in ''|*[!0-9]*) return 1 ;; esac
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "moto_server -H $MOTO_HOST -p $MOTO_PORT" || return 1
  printf '%s\n' "$pid"
}

# ---------------------------------------------------------------- PostgreSQL

# Highest PostgreSQL server version installed through Debian packages, if any.
installed_pg_version() {
  local d v best=""
  for d in /usr/lib/postgresql/*/bin/postgres; do
    [ -x "$d" ] || continue
    v="${d#/usr/lib/postgresql/}"; v="${v%%/*}"
    if [ -z "$best" ] || [ "${v%%.*}" -gt "${best%%.*}" ]; then best="$v"; fi
  done
  printf '%s' "$best"
}

# pg_ctlcluster, bypassing the systemctl redirect when systemd is not running (containers).
pg_ctl_cluster() {
  if [ -d /run/systemd/system ]; then
    as_root pg_ctlcluster "$@"
  else
    as_root pg_ctlcluster --skip-systemctl-redirect "$@"
  fi
}

# "ver name" of the cluster configured for port $PGPORT, if any.
cluster_on_port() {
  command -v pg_lsclusters >/dev/null 2>&1 || return 0
  pg_lsclusters -h 2>/dev/null | awk -v p="$PGPORT" '$3 == p { print $1, $2; exit }'
}

# Trust loopback TCP connections on a cluster this script installed or created itself.
# This is only for a throw-away local development cluster (the tests and the demo log in
# as postgres without a password); it is never done to a server that was already there.
configure_dev_hba() {
  local ver="$1" name="$2" hba="/etc/postgresql/$1/$2/pg_hba.conf"
  as_root test -f "$hba" || die "cannot find $hba"
  if as_root grep -qF "$HBA_MARKER" "$hba"; then return 0; fi
  say "configuring $hba: trust for 127.0.0.1/::1 (local development cluster installed by this script)"
  local tmp
  tmp="$(mktemp)"
  {
    printf '%s (installed by the script itself):\n' "$HBA_MARKER"
    printf '# loopback TCP connections are trusted. Never do this on a shared or production server.\n'
    printf 'host    all             all             127.0.0.1/32            trust\n'
    printf 'host    all             all             ::1/128                 trust\n\n'
    as_root cat "$hba"
  } >"$tmp"
  as_root cp "$tmp" "$hba"
  rm -f "$tmp"
  as_root chown postgres:postgres "$hba" 2>/dev/null || true
  as_root chmod 640 "$hba" 2>/dev/null || true
}

wait_for_pg() {
  local deadline=$((SECONDS + PG_START_TIMEOUT))
  until pg_answers; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 1
  done
}

ensure_psql_client() {
  command -v psql >/dev/null 2>&1 && return 0
  apt_install postgresql-client
}

ensure_postgres() {
  if pg_answers; then
    say "PostgreSQL answers on $PGHOST:$PGPORT; leaving it as it is"
    ensure_psql_client
    pg_login_ok || warn "PostgreSQL on $PGHOST:$PGPORT does not let '$PGUSER' in without a password." \
      "This script does not change the authentication of a server it did not install:" \
      "set PGUSER/PGPASSWORD (or ~/.pgpass) for the scripts and MIGRATE_TEST_PG for the tests."
    return 0
  fi
  is_local_host "$PGHOST" || die "PostgreSQL does not answer on $PGHOST:$PGPORT, and that host is not this machine: start it there"

  local installed_here=0 ver cluster name owned=0
  ver="$(installed_pg_version)"
  if [ -z "$ver" ]; then
    say "no PostgreSQL server on this machine: installing it"
    apt_install postgresql postgresql-client
    installed_here=1
    ver="$(installed_pg_version)"
    [ -n "$ver" ] || die "apt-get installed postgresql but no server binary is under /usr/lib/postgresql"
  fi
  ensure_psql_client

  cluster="$(cluster_on_port)"
  if [ -z "$cluster" ]; then
    # No cluster listens on this port: create one for development (ours, so we may configure it).
    name=main
    if pg_lsclusters -h 2>/dev/null | awk -v v="$ver" '$1 == v && $2 == "main" { f = 1 } END { exit !f }'; then
      name=migrate_dev
    fi
    say "creating PostgreSQL $ver cluster '$name' on port $PGPORT"
    as_root pg_createcluster --locale C.UTF-8 --port "$PGPORT" "$ver" "$name" >/dev/null
    cluster="$ver $name"
    owned=1
  fi
  ver="${cluster%% *}"; name="${cluster#* }"
  # A cluster the package's postinst just created, or one we configured on an earlier run, is ours.
  if [ "$installed_here" = 1 ] || as_root grep -qF "$HBA_MARKER" "/etc/postgresql/$ver/$name/pg_hba.conf" 2>/dev/null; then
    owned=1
  fi
  if [ "$owned" = 1 ]; then configure_dev_hba "$ver" "$name"; fi

  if pg_answers; then
    # The package's postinst may have started it (systemd machines): make it read our pg_hba.conf.
    if [ "$owned" = 1 ]; then pg_ctl_cluster "$ver" "$name" reload; fi
  else
    say "starting PostgreSQL cluster $ver/$name"
    pg_ctl_cluster "$ver" "$name" start || {
      as_root tail -n 30 "/var/log/postgresql/postgresql-$ver-$name.log" >&2 2>/dev/null || true
      die "pg_ctlcluster $ver $name start failed (log above)"
    }
  fi
  wait_for_pg || {
    as_root tail -n 30 "/var/log/postgresql/postgresql-$ver-$name.log" >&2 2>/dev/null || true
    die "PostgreSQL did not answer on $PGHOST:$PGPORT within ${PG_START_TIMEOUT}s (log above)"
  }
  if pg_login_ok; then
    say "PostgreSQL $ver/$name is up on $PGHOST:$PGPORT"
  elif [ "$owned" = 1 ]; then
    die "PostgreSQL is up on $PGHOST:$PGPORT but '$PGUSER' cannot log in"
  else
    warn "PostgreSQL $ver/$name is up, but '$PGUSER' cannot log in over TCP without a password;" \
      "this script leaves the authentication of a cluster it did not install alone:" \
      "set PGUSER/PGPASSWORD for the scripts and MIGRATE_TEST_PG for the tests."
  fi
}

# ---------------------------------------------------------------- virtualenv + moto

venv_has_moto() {
  [ -x "$VENV/bin/python" ] && [ -x "$VENV/bin/moto_server" ] || return 1
  "$VENV/bin/python" - "$MOTO_VERSION" <<'PY' >/dev/null 2>&1
import sys
from importlib.metadata import version
assert version("moto") == sys.argv[1]
for dist in ("flask", "flask-cors", "boto3"):   # what the [server] extra and the bench's baselines need
    version(dist)
PY
}

ensure_venv() {
  if venv_has_moto; then return 0; fi
  local py
  py="$(command -v python3 || true)"
  [ -n "$py" ] || apt_install python3 python3-venv
  py="$(command -v python3)"
  if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    rm -rf "$VENV"
    say "creating the virtualenv $VENV"
    if ! "$py" -m venv "$VENV" >/dev/null 2>&1; then
      # Debian's python3 ships without ensurepip until python3-venv is installed.
      rm -rf "$VENV"
      apt_install python3-venv
      "$py" -m venv "$VENV" || die "python3 -m venv $VENV failed"
    fi
    printf '*\n' >"$VENV/.gitignore"
  fi
  say "installing moto[server]==$MOTO_VERSION into $VENV (a minute or so)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" \
    || die "pip could not install moto[server]==$MOTO_VERSION"
  venv_has_moto || die "moto[server]==$MOTO_VERSION is still missing from $VENV after pip install"
}

wait_for_moto() {
  local pid="$1" deadline=$((SECONDS + MOTO_START_TIMEOUT))
  until http_answers "$(moto_url)"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$MOTO_LOG" >&2 2>/dev/null || true
      die "the moto server (pid $pid) exited; the tail of $MOTO_LOG is above"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 30 "$MOTO_LOG" >&2 2>/dev/null || true
      kill "$pid" 2>/dev/null || true   # ours, started above or by an earlier run: no half-started server left behind
      rm -f "$MOTO_PID_FILE"
      die "the moto server (pid $pid) did not answer on $(moto_url) within ${MOTO_START_TIMEOUT}s; the tail of $MOTO_LOG is above"
    fi
    sleep 0.5
  done
}

ensure_moto() {
  local pid
  if http_answers "$(moto_url)"; then
    if pid="$(our_moto_pid)"; then
      say "moto server already running on $(moto_url) (pid $pid)"
    else
      say "something already answers on $(moto_url) (LocalStack or another moto); leaving it"
    fi
    return 0
  fi
  if pid="$(our_moto_pid)"; then
    say "moto server (pid $pid) is starting; waiting for it"
    wait_for_moto "$pid"
    return 0
  fi
  if tcp_open "$MOTO_HOST" "$MOTO_PORT"; then
    die "port $MOTO_PORT on $MOTO_HOST is taken by something that does not speak HTTP; free it or set MOTO_PORT"
  fi
  ensure_venv
  mkdir -p "$STATE"
  printf '*\n' >"$STATE/.gitignore"
  if [ -f "$MOTO_LOG" ]; then mv -f "$MOTO_LOG" "$MOTO_LOG.1"; fi
  say "starting moto_server on $(moto_url) (log: ${MOTO_LOG#"$ROOT"/})"
  # Detached: its own session (setsid), immune to hangups (nohup), stdin closed, so it
  # outlives this script and the terminal. The background job is not a process-group
  # leader, so setsid does not fork and $! is moto_server's own pid.
  setsid nohup "$VENV/bin/moto_server" -H "$MOTO_HOST" -p "$MOTO_PORT" </dev/null >>"$MOTO_LOG" 2>&1 &
  pid=$!
  printf '%s\n' "$pid" >"$MOTO_PID_FILE"
  wait_for_moto "$pid"
  say "moto server is up on $(moto_url) (pid $pid)"
}

stop_moto() {
  local pid
  if pid="$(our_moto_pid)"; then
    say "stopping moto server (pid $pid)"
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    rm -f "$MOTO_PID_FILE"
  else
    say "no moto server started by this script is running"
    rm -f "$MOTO_PID_FILE"
  fi
}

# ---------------------------------------------------------------- browser

# Chromium, for the headless rendering test of the HTML report (tests/report.rs).
ensure_browser() {
  if [ -x /usr/bin/chromium ]; then
    say "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo installed)"
    return 0
  fi
  apt_install chromium
  [ -x /usr/bin/chromium ] || die "apt-get installed chromium but /usr/bin/chromium is missing"
}

# ---------------------------------------------------------------- report

status() {
  local pg moto pid
  if pg_answers; then
    if pg_login_ok; then pg="up (user $PGUSER can log in)"; else pg="up (user $PGUSER cannot log in without a password)"; fi
  else
    pg="DOWN"
  fi
  if http_answers "$(moto_url)"; then
    if pid="$(our_moto_pid)"; then moto="up: moto_server $MOTO_VERSION, pid $pid, log ${MOTO_LOG#"$ROOT"/}"
    else moto="up: not started by this script (LocalStack or another moto)"; fi
  else
    moto="DOWN"
  fi
  printf '\nLocal services:\n'
  printf '  PostgreSQL : %s:%s  %s\n' "$PGHOST" "$PGPORT" "$pg"
  printf '  DynamoDB   : %s  %s\n' "$(moto_url)" "$moto"
  printf '  virtualenv : %s\n' "$( [ -x "$VENV/bin/python" ] && echo "${VENV#"$ROOT"/}/ ($("$VENV/bin/python" -V 2>&1))" || echo "none")"
  if our_moto_pid >/dev/null; then
    printf '  stop moto  : MOTO_PORT=%s scripts/services.sh --stop\n' "$MOTO_PORT"
  fi
}

# ---------------------------------------------------------------- main

case "$ACTION" in
  status) status; exit 0 ;;
  stop) stop_moto; exit 0 ;;
esac

if [ "$DO_PG" = 1 ]; then ensure_postgres; fi
if [ "$DO_MOTO" = 1 ]; then ensure_moto; fi
if [ "$DO_VENV" = 1 ]; then ensure_venv; fi
if [ "$DO_BROWSER" = 1 ]; then ensure_browser; fi

if [ -n "$TABLES_CONFIG" ]; then
  [ -f "$TABLES_CONFIG" ] || die "config file not found: $TABLES_CONFIG"
  command -v cargo >/dev/null 2>&1 || die "--tables needs cargo (it runs migrate tables create): install Rust first"
  args=(--config "$TABLES_CONFIG")
  if [ "$RECREATE" = 1 ]; then args+=(--recreate); fi
  (cd "$ROOT" && cargo run --release --quiet -- tables create "${args[@]}") || die "creating the target tables failed"
fi

status
