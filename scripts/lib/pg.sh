# scripts/lib/pg.sh — PostgreSQL provisioning shared by scripts/test.sh and scripts/demo.sh.
# Sourced, not run. The caller defines log MESSAGE and die MESSAGE (both print to stderr with the
# caller's prefix; die exits 1) and may set, before calling start_throwaway_postgres:
#   PG_TMP_PREFIX   name prefix of the cluster's temporary directory (default autonomous-dev-pg)
# It provides:
#   is_root, redact URL, apt_install PACKAGE..., db_reachable URL, find_initdb, free_port,
#   start_throwaway_postgres (exports DATABASE_URL for a fresh cluster), stop_throwaway_postgres.
# shellcheck shell=bash

is_root() { [ "$(id -u)" -eq 0 ]; }

# A connection string with its password replaced by ***, for messages.
redact() { printf '%s' "$1" | sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#'; }

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

# stop_throwaway_postgres: stops the cluster started by start_throwaway_postgres (if any) and
# removes its directory. Safe to call more than once.
stop_throwaway_postgres() {
    if [ -n "$PG_TMP" ]; then
        if [ -n "$PG_CTL" ] && [ -f "$PG_TMP/data/postmaster.pid" ]; then
            log "stopping the throwaway PostgreSQL"
            (cd / && "${PG_RUN[@]}" "$PG_CTL" -D "$PG_TMP/data" -m immediate -w stop >/dev/null 2>&1) || true
        fi
        rm -rf "$PG_TMP"
        PG_TMP=""
    fi
}

# start_throwaway_postgres: initdb + pg_ctl start in a temporary directory on a free port (as the
# postgres user, else nobody, when root: initdb refuses root), trust authentication for the
# superuser postgres; exports DATABASE_URL=postgres://postgres@127.0.0.1:PORT/postgres.
# initdb is installed with apt-get (package postgresql) when missing and running as root.
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

    PG_TMP=$(mktemp -d "${TMPDIR:-/tmp}/${PG_TMP_PREFIX:-autonomous-dev-pg}.XXXXXX")
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
