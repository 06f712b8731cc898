#!/usr/bin/env bash
# deploy.sh — install or update autonomous-dev on this machine (Debian/Ubuntu, run as root).
# Idempotent: every step checks what exists and only does what is missing. See --help.
set -euo pipefail

SERVICE=autonomous-dev
SERVICE_USER=autonomous-dev
STATE_DIR=/var/lib/autonomous-dev
UNIT_DIR=/etc/systemd/system
DB_NAME=autonomous_dev
DB_ROLE=autonomous_dev
DEFAULT_PREFIX=/usr/local
DEFAULT_ENV_FILE=/etc/autonomous-dev/env

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PREFIX=$DEFAULT_PREFIX
ENV_FILE=$DEFAULT_ENV_FILE
SKIP_BUILD=0
BINARY=""
PG_PORT=5432
START=1

usage() {
    cat <<EOF
Usage: deploy.sh [OPTIONS]

Installs or updates autonomous-dev as a systemd service on this machine. Run it as root
from a checkout of the repository; running it again is safe (it only does what is missing,
and never overwrites the environment file).

Steps:
  1. Build the release binary: cargo build --release --locked (skipped by --skip-build).
  2. Install it to PREFIX/bin/autonomous-dev (mode 0755).
  3. Create the system user and group '$SERVICE_USER' (home $STATE_DIR, no login shell).
  3b. Install bubblewrap with apt-get when it is missing: the sandbox the daemon runs the
     target repository's checks in (it refuses to start without it unless VERIFY=false).
  4. Install PostgreSQL with apt-get when it is missing, and make sure the server accepts
     connections on 127.0.0.1:PORT.
  5. Create the database role '$DB_ROLE' and database '$DB_NAME' when absent.
  6. Create the environment file from systemd/env.example when it does not exist
     (root:root, mode 0600), with DATABASE_URL pointing at that database and a freshly
     generated password. An existing file is never modified.
  7. Apply the database migrations: autonomous-dev migrate.
  8. Install systemd/autonomous-dev.service to $UNIT_DIR. When systemd is running:
     daemon-reload, enable, and start (or restart) the service, unless the secrets
     (GITHUB_TOKEN, ANTHROPIC_API_KEY) are still empty or REPO_PATH is not a git clone.
     Without systemd, prints how to run the daemon in the foreground.

Secrets are never printed. After the first run, edit the environment file (GITHUB_TOKEN,
ANTHROPIC_API_KEY, REPO_PATH, ...), clone the target repository into REPO_PATH, and run
deploy.sh again (or systemctl start $SERVICE).

Options:
  --skip-build       Do not run cargo; install the existing target/release/autonomous-dev.
  --binary PATH      Install this prebuilt binary (implies --skip-build).
  --prefix DIR       Install the binary to DIR/bin (default: $DEFAULT_PREFIX). The installed
                     unit's ExecStart= is adjusted to match.
  --env-file PATH    Environment file (default: $DEFAULT_ENV_FILE). The installed unit's
                     EnvironmentFile= is adjusted to match.
  --pg-port PORT     Port of the local PostgreSQL server (default: 5432).
  --no-start         Install and enable, but do not start or restart the service.
  -h, --help         Show this help and exit.

Notes: cargo is often not on root's PATH under sudo; then build as your user
(cargo build --release --locked) and run: sudo ./deploy.sh --skip-build
EOF
}

log() { printf '==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
    -h | --help)
        usage
        exit 0
        ;;
    --skip-build) SKIP_BUILD=1 ;;
    --binary)
        [ $# -ge 2 ] || die "--binary needs a path"
        BINARY=$2
        SKIP_BUILD=1
        shift
        ;;
    --prefix)
        [ $# -ge 2 ] || die "--prefix needs a directory"
        PREFIX=${2%/}
        shift
        ;;
    --env-file)
        [ $# -ge 2 ] || die "--env-file needs a path"
        ENV_FILE=$2
        shift
        ;;
    --pg-port)
        [ $# -ge 2 ] || die "--pg-port needs a port number"
        PG_PORT=$2
        shift
        ;;
    --no-start) START=0 ;;
    *) die "unknown option: $1 (see deploy.sh --help)" ;;
    esac
    shift
done

case "$PG_PORT" in
'' | *[!0-9]*) die "--pg-port must be a number, got '$PG_PORT'" ;;
esac
case "$ENV_FILE" in
/*) ;;
*) die "--env-file must be an absolute path" ;;
esac
case "$PREFIX" in
/*) ;;
*) die "--prefix must be an absolute path" ;;
esac

[ "$(id -u)" -eq 0 ] || die "deploy.sh must run as root (try: sudo $0 ...)"

BIN="$PREFIX/bin/autonomous-dev"
TEMPLATE="$REPO_ROOT/systemd/env.example"
UNIT_SRC="$REPO_ROOT/systemd/$SERVICE.service"
[ -f "$TEMPLATE" ] || die "missing $TEMPLATE (run deploy.sh from a checkout of the repository)"
[ -f "$UNIT_SRC" ] || die "missing $UNIT_SRC (run deploy.sh from a checkout of the repository)"

umask 022
# Private (mode 0700): the environment file with its password is assembled here.
TMP_DIR=$(mktemp -d)
trap 'rm -rf "$TMP_DIR"' EXIT

# Reads KEY from an environment file without printing anything (the last assignment wins).
env_value() {
    local file=$1 key=$2
    (
        set +u
        set -a
        # shellcheck disable=SC1090
        . "$file" >/dev/null 2>&1
        set +a
        printf '%s' "${!key-}"
    )
}

# --- 1. Build --------------------------------------------------------------------------------
if [ "$SKIP_BUILD" -eq 0 ]; then
    log "Building the release binary (cargo build --release --locked)"
    command -v cargo >/dev/null 2>&1 ||
        die "cargo not found on PATH; build as your user (cargo build --release --locked) and run deploy.sh --skip-build"
    (cd "$REPO_ROOT" && cargo build --release --locked)
else
    log "Skipping the build (--skip-build)"
fi
[ -n "$BINARY" ] || BINARY="$REPO_ROOT/target/release/autonomous-dev"
[ -x "$BINARY" ] || die "no executable binary at $BINARY (build it, or pass --binary PATH)"

# --- 2. Install the binary ---------------------------------------------------------------------
log "Installing the binary to $BIN"
if [ -f "$BIN" ] && cmp -s "$BINARY" "$BIN"; then
    info "unchanged"
    BINARY_CHANGED=0
else
    install -d -m 0755 "$PREFIX/bin"
    install -m 0755 "$BINARY" "$BIN"
    info "installed from $BINARY"
    BINARY_CHANGED=1
fi

# --- 3. Service user and group -------------------------------------------------------------------
log "Ensuring the system user and group '$SERVICE_USER'"
if ! getent group "$SERVICE_USER" >/dev/null; then
    groupadd --system "$SERVICE_USER"
    info "created group $SERVICE_USER"
else
    info "group $SERVICE_USER exists"
fi
if ! getent passwd "$SERVICE_USER" >/dev/null; then
    useradd --system --gid "$SERVICE_USER" --home-dir "$STATE_DIR" --no-create-home \
        --shell /usr/sbin/nologin --comment "autonomous-dev daemon" "$SERVICE_USER"
    info "created user $SERVICE_USER (home $STATE_DIR, shell /usr/sbin/nologin)"
else
    info "user $SERVICE_USER exists"
fi
# systemd's StateDirectory= creates it too; created here so migrate and foreground runs work.
install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" "$STATE_DIR"
info "state directory $STATE_DIR (owner $SERVICE_USER, mode 0750)"

# --- 3b. The verification sandbox -----------------------------------------------------------------
log "Ensuring bubblewrap (the sandbox for the target repository's checks)"
if ! command -v bwrap >/dev/null 2>&1; then
    info "installing bubblewrap (apt-get install -y bubblewrap)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq bubblewrap >/dev/null
fi
info "installed ($(bwrap --version))"

# --- 4. PostgreSQL -------------------------------------------------------------------------------
log "Ensuring PostgreSQL is installed and running on 127.0.0.1:$PG_PORT"
have_server() { compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; }
if ! command -v psql >/dev/null 2>&1 || ! have_server; then
    info "installing PostgreSQL (apt-get install -y postgresql)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
    info "installed"
else
    info "installed ($(psql --version))"
fi

pg_ready() { pg_isready -q -h 127.0.0.1 -p "$PG_PORT" >/dev/null 2>&1; }
if ! pg_ready; then
    if [ -d /run/systemd/system ]; then
        info "starting postgresql.service"
        systemctl enable --now postgresql
    elif command -v pg_lsclusters >/dev/null 2>&1; then
        # No systemd (container): start the Debian clusters configured for this port.
        while read -r version cluster port status _; do
            if [ "$port" = "$PG_PORT" ] && [ "$status" != "online" ]; then
                info "starting cluster $version/$cluster (pg_ctlcluster)"
                pg_ctlcluster "$version" "$cluster" start
            fi
        done < <(pg_lsclusters --no-header)
    fi
    for _ in $(seq 1 30); do
        pg_ready && break
        sleep 1
    done
fi
pg_ready || die "PostgreSQL does not accept connections on 127.0.0.1:$PG_PORT"
info "accepting connections"

# --- 5. Database role and database ------------------------------------------------------------------
# Connect as the superuser 'postgres': over the Unix socket as the postgres OS user (Debian's
# default peer authentication), else over TCP (trust or a ~/.pgpass of root).
PSQL_VIA=""
for via in socket tcp; do
    if [ "$via" = socket ]; then
        (cd / && runuser -u postgres -- psql -X -qAt -p "$PG_PORT" -d postgres -c 'SELECT 1') >/dev/null 2>&1 || continue
    else
        psql -X -qAt -w -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -c 'SELECT 1' >/dev/null 2>&1 || continue
    fi
    PSQL_VIA=$via
    break
done
[ -n "$PSQL_VIA" ] || die "cannot connect to PostgreSQL as 'postgres' (neither peer auth via runuser nor 127.0.0.1:$PG_PORT)"

# psql as the superuser; SQL on stdin or with -c. The working directory is / because the
# postgres user cannot enter root's.
psql_admin() {
    if [ "$PSQL_VIA" = socket ]; then
        (cd / && runuser -u postgres -- psql -X -qAt -v ON_ERROR_STOP=1 -p "$PG_PORT" -d postgres "$@")
    else
        (cd / && psql -X -qAt -w -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres "$@")
    fi
}

log "Ensuring the database role '$DB_ROLE' and database '$DB_NAME' (connected as postgres via $PSQL_VIA)"
if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$DB_ROLE'")" = 1 ]; then
    info "role $DB_ROLE exists"
else
    psql_admin -c "CREATE ROLE $DB_ROLE LOGIN"
    info "created role $DB_ROLE"
fi
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" = 1 ]; then
    info "database $DB_NAME exists"
else
    psql_admin -c "CREATE DATABASE $DB_NAME OWNER $DB_ROLE"
    info "created database $DB_NAME (owner $DB_ROLE)"
fi

# --- 6. Environment file ----------------------------------------------------------------------------
log "Ensuring the environment file $ENV_FILE"
if [ -e "$ENV_FILE" ]; then
    info "exists; left unchanged"
else
    # A new password for the role, known only to the new file; hex, so it needs no escaping in
    # SQL, URLs or sed. Sent to psql on stdin, never on a command line.
    password=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
    printf "ALTER ROLE %s WITH LOGIN PASSWORD '%s';\n" "$DB_ROLE" "$password" | psql_admin >/dev/null
    info "set a new password for role $DB_ROLE"
    database_url="postgres://$DB_ROLE:$password@127.0.0.1:$PG_PORT/$DB_NAME"
    install -d -m 0755 "$(dirname "$ENV_FILE")"
    sed "s|^DATABASE_URL=.*|DATABASE_URL=$database_url|" "$TEMPLATE" >"$TMP_DIR/env"
    install -m 0600 -o root -g root "$TMP_DIR/env" "$ENV_FILE"
    unset password database_url
    info "created from systemd/env.example (root:root, mode 0600)"
    info "DATABASE_URL=postgres://$DB_ROLE:***@127.0.0.1:$PG_PORT/$DB_NAME"
fi

# --- 7. Migrations ----------------------------------------------------------------------------------
log "Applying database migrations (autonomous-dev migrate)"
[ -n "$(env_value "$ENV_FILE" DATABASE_URL)" ] || die "DATABASE_URL is empty in $ENV_FILE"
# As the service user, from its working directory, with exactly the service's settings.
(
    set -a
    # shellcheck disable=SC1090
    . "$ENV_FILE"
    set +a
    cd "$STATE_DIR"
    runuser -u "$SERVICE_USER" -- "$BIN" migrate
)
info "done"

# --- 8. systemd unit ----------------------------------------------------------------------------------
UNIT_DST="$UNIT_DIR/$SERVICE.service"
log "Installing the unit to $UNIT_DST"
sed -e "s|^ExecStart=/usr/local/bin/autonomous-dev |ExecStart=$BIN |" \
    -e "s|^EnvironmentFile=.*|EnvironmentFile=$ENV_FILE|" "$UNIT_SRC" >"$TMP_DIR/unit"
if [ -f "$UNIT_DST" ] && cmp -s "$TMP_DIR/unit" "$UNIT_DST"; then
    info "unchanged"
    UNIT_CHANGED=0
else
    install -d -m 0755 "$UNIT_DIR"
    install -m 0644 -o root -g root "$TMP_DIR/unit" "$UNIT_DST"
    info "installed"
    UNIT_CHANGED=1
fi

# Whether the daemon can start: secrets present and a clone at REPO_PATH.
missing=()
for key in GITHUB_TOKEN ANTHROPIC_API_KEY REPO_PATH; do
    [ -n "$(env_value "$ENV_FILE" "$key")" ] || missing+=("$key")
done
repo_path=$(env_value "$ENV_FILE" REPO_PATH)
if [ -n "$repo_path" ] && [ ! -d "$repo_path/.git" ]; then
    missing+=("a git clone at REPO_PATH ($repo_path)")
fi

if [ -d /run/systemd/system ]; then
    log "Enabling the service"
    systemctl daemon-reload
    systemctl enable --quiet "$SERVICE"
    info "enabled ($SERVICE starts at boot)"
    if [ "$START" -eq 0 ]; then
        info "not started (--no-start)"
    elif [ ${#missing[@]} -gt 0 ]; then
        warn "not starting $SERVICE: missing ${missing[*]}"
        info "edit $ENV_FILE, then: systemctl start $SERVICE"
    elif systemctl is-active --quiet "$SERVICE"; then
        if [ "$BINARY_CHANGED" -eq 1 ] || [ "$UNIT_CHANGED" -eq 1 ]; then
            systemctl restart "$SERVICE"
            info "restarted (new binary or unit)"
        else
            info "already running; nothing changed"
        fi
    else
        systemctl start "$SERVICE"
        info "started"
    fi
    info "status: systemctl status $SERVICE    logs: journalctl -u $SERVICE -f"
else
    log "systemd is not running (no /run/systemd/system): not enabling the service"
    [ ${#missing[@]} -eq 0 ] || warn "before running, set: ${missing[*]} (in $ENV_FILE)"
    info "run the daemon in the foreground with:"
    info "  set -a; . $ENV_FILE; set +a; $BIN run"
    info "or, as the service user (the environment file is readable by root only):"
    info "  (set -a; . $ENV_FILE; set +a; cd $STATE_DIR && exec runuser -u $SERVICE_USER -- $BIN run)"
fi

log "Done. Load the Phase 1 backlog with:"
info "(set -a; . $ENV_FILE; set +a; $BIN tasks load $REPO_ROOT/tasks/phase1.json)"
