#!/usr/bin/env bash
# scripts/test.sh — the test command (README, .ci/run): provisions what the test suite needs and
# runs it.
#
#   scripts/test.sh                    # cargo test --locked --all-targets
#   scripts/test.sh --test it systemd:: # extra arguments go to cargo test (tests/it/ is one binary)
#   scripts/test.sh store -- --nocapture
#
# 1. Makes sure `git`, `systemd-analyze`, `bwrap`, `prlimit`, `strace`, `chromium` and `promtool` exist
#    (apt-get install git / systemd / bubblewrap / util-linux / strace / chromium / prometheus when
#    running as root on Debian; otherwise a warning, and the tests that need them say so). The daemon verifies changes in a bubblewrap sandbox and
#    refuses to start without one.
# 2. Uses the PostgreSQL at DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres)
#    when it accepts connections. A working DATABASE_URL is never replaced.
#    Otherwise starts a throwaway cluster (initdb + pg_ctl) in a temporary directory on a free
#    port, exports DATABASE_URL for it, and removes it on exit. initdb comes from PATH or
#    /usr/lib/postgresql/*/bin, and is installed with apt-get (package postgresql) when missing
#    and running as root. The tests need a role that may create databases (#[sqlx::test]).
# 3. Runs cargo test --locked (with --all-targets unless the arguments select targets) and exits
#    with cargo's status.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

export CARGO_TERM_COLOR=never
DEFAULT_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres

log() { printf 'test.sh: %s\n' "$*" >&2; }
die() {
    printf 'test.sh: error: %s\n' "$*" >&2
    exit 1
}

# is_root, redact, apt_install, db_reachable, start_throwaway_postgres, stop_throwaway_postgres.
# shellcheck source=scripts/lib/pg.sh
. scripts/lib/pg.sh
PG_TMP_PREFIX=autonomous-dev-test-pg

# ensure_command COMMAND PACKAGE: installs PACKAGE when COMMAND is missing, if it can.
ensure_command() {
    local cmd=$1 pkg=$2
    command -v "$cmd" >/dev/null 2>&1 && return 0
    if apt_install "$pkg" && command -v "$cmd" >/dev/null 2>&1; then
        log "installed $pkg ($cmd)"
    else
        log "warning: $cmd is missing and could not be installed (package $pkg); tests needing it will fail or skip"
    fi
}

# --- Tools -------------------------------------------------------------------------------------
command -v cargo >/dev/null 2>&1 || die "cargo not found on PATH (install the Rust toolchain with rustup)"
ensure_command git git
ensure_command systemd-analyze systemd
ensure_command bwrap bubblewrap
ensure_command prlimit util-linux
ensure_command strace strace
# The sandbox tests' target repositories: Python's unittest behind a Makefile.
ensure_command python3 python3
ensure_command make make
# The status page's tests: a real headless browser, and Prometheus' linter of /metrics.
ensure_command chromium chromium
ensure_command promtool prometheus

# --- PostgreSQL --------------------------------------------------------------------------------
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    stop_throwaway_postgres
}
CARGO_PID=""
# On INT/TERM: stop cargo and its test processes (their own process group, see below), then exit,
# which runs cleanup.
# shellcheck disable=SC2317  # invoked by the INT and TERM traps
on_signal() {
    if [ -n "$CARGO_PID" ]; then
        kill -TERM -- "-$CARGO_PID" 2>/dev/null || true
        wait "$CARGO_PID" 2>/dev/null || true
    fi
    exit "$1"
}
trap cleanup EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

DATABASE_URL=${DATABASE_URL:-$DEFAULT_DATABASE_URL}
# Client tools make the check precise (psql logs in); install them when possible.
command -v psql >/dev/null 2>&1 || apt_install postgresql-client >/dev/null 2>&1 || true
if db_reachable "$DATABASE_URL"; then
    log "using PostgreSQL at $(redact "$DATABASE_URL")"
    export DATABASE_URL
else
    log "PostgreSQL at $(redact "$DATABASE_URL") is not reachable"
    start_throwaway_postgres
fi

# sqlx's query macros check SQL against DATABASE_URL at compile time unless offline data exists;
# prefer the committed .sqlx data so compilation does not depend on the test database's schema.
if [ -d .sqlx ] && [ -z "${SQLX_OFFLINE:-}" ]; then
    export SQLX_OFFLINE=true
fi

# --- cargo test --------------------------------------------------------------------------------
# --all-targets (lib, bins, tests, examples, benches) unless the arguments select targets.
select_all=1
for arg in "$@"; do
    [ "$arg" = -- ] && break
    case "$arg" in
    --lib | --bins | --bin | --bin=* | --tests | --test | --test=* | --examples | --example | --example=* | \
        --benches | --bench | --bench=* | --all-targets | --doc)
        select_all=0
        ;;
    esac
done
cmd=(cargo test --locked)
[ "$select_all" -eq 1 ] && cmd+=(--all-targets)
cmd+=("$@")

log "running: ${cmd[*]}"
# cargo runs as a background job in its own process group (set -m) so that a signal to this
# script is handled at once (bash runs traps only after a foreground child exits) and reaches the
# test binaries too.
status=0
set -m
"${cmd[@]}" &
CARGO_PID=$!
set +m
wait "$CARGO_PID" || status=$?
CARGO_PID=""
log "cargo test exited with status $status"
exit "$status"
