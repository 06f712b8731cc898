#!/usr/bin/env bash
# scripts/test.sh — the test command (README, .ci/run): provisions what the test suite needs and
# runs it.
#
#   scripts/test.sh                    # cargo test --locked --all-targets
#   scripts/test.sh --test systemd     # extra arguments go to cargo test
#   scripts/test.sh store -- --nocapture
#
# 1. Makes sure `git` and `systemd-analyze` exist (apt-get install git / systemd when running as
#    root on Debian; otherwise a warning, and the tests that need them say so).
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

# A connection string with its password replaced by ***, for messages.
redact() { printf '%s' "$1" | sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#'; }

is_root() { [ "$(id -u)" -eq 0 ]; }

APT_UPDATED=0
# apt_install PACKAGE...: installs Debian packages when running as root with apt-get; returns 1
# when that is not possible.
apt_install() {
    if ! is_root || ! command -v apt-get >/dev/null 2>&1; then
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        apt-get update -qq >&2 || return 1
        APT_UPDATED=1
    fi
    log "apt-get install -y $*"
    apt-get install -y -qq --no-install-recommends "$@" >&2
}

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

# --- PostgreSQL --------------------------------------------------------------------------------
# db_reachable URL: true when a server accepts connections (and, with psql, this login works).
db_reachable() {
    local url=$1
    if command -v psql >/dev/null 2>&1; then
        PGCONNECT_TIMEOUT=5 psql -X -q -w -d "$url" -c 'SELECT 1' >/dev/null 2>&1
    elif command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -t 5 -d "$url" >/dev/null 2>&1
    else
        # No client tools: fall back to a TCP probe of host:port taken from the URL.
        local rest=${url#*://}
        rest=${rest#*@}
        rest=${rest%%/*}
        local host=${rest%%:*} port=5432
        [ "$rest" != "$host" ] && port=${rest#*:}
        [ -n "$host" ] || host=127.0.0.1
        (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
    fi
}

# find_initdb: prints the path of initdb (PATH first, then the newest Debian server package).
find_initdb() {
    if command -v initdb >/dev/null 2>&1; then
        command -v initdb
        return 0
    fi
    local found
    found=$(compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V | tail -n 1 || true)
    [ -n "$found" ] && printf '%s\n' "$found"
}

# free_port: prints a TCP port on 127.0.0.1 nobody listens on.
free_port() {
    local port tries
    for tries in $(seq 1 100); do
        port=$((20000 + (RANDOM * 32768 + RANDOM + tries) % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            printf '%s\n' "$port"
            return 0
        fi
    done
    return 1
}

PG_TMP=""
PG_CTL=""
PG_RUN=()
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    if [ -n "$PG_TMP" ]; then
        if [ -n "$PG_CTL" ] && [ -f "$PG_TMP/data/postmaster.pid" ]; then
            log "stopping the throwaway PostgreSQL"
            (cd / && "${PG_RUN[@]}" "$PG_CTL" -D "$PG_TMP/data" -m immediate -w stop >/dev/null 2>&1) || true
        fi
        rm -rf "$PG_TMP"
    fi
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

start_throwaway_postgres() {
    local initdb bindir port owner
    initdb=$(find_initdb || true)
    if [ -z "$initdb" ]; then
        apt_install postgresql || die "initdb not found and PostgreSQL cannot be installed (not root, or no apt-get); set DATABASE_URL to a reachable server"
        initdb=$(find_initdb || true)
        [ -n "$initdb" ] || die "initdb still not found after installing postgresql"
    fi
    # pg_ctl and postgres from the same version as initdb (PATH entries may be symlinks).
    bindir=$(dirname "$(readlink -f "$initdb")")
    PG_CTL=$bindir/pg_ctl
    [ -x "$PG_CTL" ] || die "pg_ctl not found next to $initdb"

    PG_TMP=$(mktemp -d "${TMPDIR:-/tmp}/autonomous-dev-test-pg.XXXXXX")
    # initdb and postgres refuse to run as root: use the postgres user, else nobody.
    if is_root; then
        owner=nobody
        id postgres >/dev/null 2>&1 && owner=postgres
        chown "$owner" "$PG_TMP"
        PG_RUN=(runuser -u "$owner" --)
    else
        owner=$(id -un)
        PG_RUN=()
    fi

    port=$(free_port) || die "no free TCP port found"
    log "starting a throwaway PostgreSQL ($("$PG_CTL" --version)) in $PG_TMP on 127.0.0.1:$port as $owner"
    # cd /: the server user may not be allowed to enter the current directory.
    (cd / && "${PG_RUN[@]}" "$initdb" -D "$PG_TMP/data" -U postgres -A trust -E UTF8 --locale=C --no-sync \
        >"$PG_TMP/initdb.log" 2>&1) || {
        cat "$PG_TMP/initdb.log" >&2
        die "initdb failed"
    }
    # Durability is irrelevant for a cluster deleted at exit; parallel #[sqlx::test]s need
    # connections.
    (cd / && "${PG_RUN[@]}" "$PG_CTL" -D "$PG_TMP/data" -l "$PG_TMP/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $PG_TMP -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >/dev/null) || {
        cat "$PG_TMP/server.log" >&2 || true
        die "the throwaway PostgreSQL did not start"
    }
    export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
    db_reachable "$DATABASE_URL" || die "the throwaway PostgreSQL does not accept connections on port $port"
    log "DATABASE_URL=$DATABASE_URL (removed on exit)"
}

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
