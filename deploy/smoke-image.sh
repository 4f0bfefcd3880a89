#!/usr/bin/env bash
# Build the hfbot image and check that it runs as the README says, against the project's
# own Bot API emulator on this machine (no Telegram account needed):
#
#   1. the image builds (build arguments PYTHON_IMAGE and TORCH_INDEX, host network);
#   2. `hfbot run` in it without a token is one line and exit 2;
#   3. started with `--env-file .env.example` (plus the emulator's token and address) on
#      a fresh volume, its HEALTHCHECK passes;
#   4. it runs as uid 10001, and its SQLite database is /data/hfbot.db on the volume;
#   5. it answers /start, /sentiment (a tiny model on the image's torch) and /set through
#      the emulator;
#   6. SIGTERM (`docker stop`) stops it cleanly: exit 0, no traceback in its log;
#   7. started again on the same volume it is healthy and remembers the /set;
#   8. with SMOKE_POSTGRES_URL set (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/smoke,
#      an empty database), 3, 5 and 6 again on PostgreSQL.
#
# Run from a clone with `make .venv/.installed` done (the emulator and the tiny models
# come from .venv). The containers use the host's network, so they reach the emulator and
# a PostgreSQL on 127.0.0.1. A machine that cannot pull python:3.11-slim or reach
# PyTorch's index: deploy/offline-base.sh first, then pass what it prints.
#
# Settings (environment): DOCKER (docker), IMAGE (hfbot:smoke), PYTHON_IMAGE, TORCH_INDEX,
# SMOKE_PORT (the emulator's port, 8790), SMOKE_POSTGRES_URL, KEEP=1 keeps the volume.
set -euo pipefail
cd "$(dirname "$0")/.."

DOCKER=${DOCKER:-docker}
IMAGE=${IMAGE:-hfbot:smoke}
PYTHON_IMAGE=${PYTHON_IMAGE:-python:3.11-slim}
TORCH_INDEX=${TORCH_INDEX:-https://download.pytorch.org/whl/cpu}
PORT=${SMOKE_PORT:-8790}
PY=.venv/bin/python
NAME=hfbot-smoke-$$
VOLUME=hfbot-smoke-$$
WORK=$(mktemp -d)
TOKEN=$($PY -c 'from bot.offline.emulator import DEFAULT_TOKEN; print(DEFAULT_TOKEN)')
CHAT_PID=

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }

cleanup() {
  [ -n "$CHAT_PID" ] && kill "$CHAT_PID" 2>/dev/null || true
  $DOCKER rm -f -v "$NAME" "$NAME-pg" >/dev/null 2>&1 || true
  [ "${KEEP:-}" = 1 ] || $DOCKER volume rm "$VOLUME" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { $PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# The person's side: the emulator on $PORT, talking to whichever bot polls it.
chat() {
  $PY deploy/smoke_chat.py "$PORT" "$1" >"$WORK/chat-$1.log" 2>&1 &
  CHAT_PID=$!
}

chat_done() {
  local code=0
  wait "$CHAT_PID" || code=$?
  CHAT_PID=
  sed 's/^/   /' "$WORK/chat-$1.log"
  [ "$code" = 0 ] || fail "the bot did not answer as expected ($1)"
}

# Start the bot container: run CONTAINER [docker run options...]
run() {
  local name=$1
  shift
  $DOCKER run -d --name "$name" --network host --health-interval 3s \
    --env-file .env.example \
    -e TELEGRAM_BOT_TOKEN="$TOKEN" -e TELEGRAM_API_BASE_URL="http://127.0.0.1:$PORT" \
    -e HFBOT_METRICS_PORT="$METRICS_PORT" -e HFBOT_DEFAULT_MODELS="$MODELS" \
    -e HF_HUB_OFFLINE=1 -v "$WORK/models:/demo-models:ro" "$@" "$IMAGE" >/dev/null
}

wait_healthy() {
  local name=$1 started=$SECONDS status
  while :; do
    status=$($DOCKER inspect -f '{{.State.Health.Status}}' "$name" 2>/dev/null || echo gone)
    [ "$status" = healthy ] && break
    if [ "$status" = gone ] || [ "$($DOCKER inspect -f '{{.State.Running}}' "$name")" != true ]; then
      $DOCKER logs --tail 30 "$name" 2>&1 | sed 's/^/   /'
      $DOCKER inspect -f '{{range .Config.Env}}   {{println .}}{{end}}' "$name" | grep -E 'DATABASE|HF_' || true
      fail "$name exited before it was healthy"
    fi
    [ $((SECONDS - started)) -lt 300 ] || fail "$name not healthy after 300 s ($status)"
    sleep 2
  done
  echo "   healthy after $((SECONDS - started)) s"
}

stop_cleanly() {
  local name=$1 took code
  took=$($PY -c 'import subprocess, sys, time
start = time.monotonic()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(f"{time.monotonic() - start:.1f}")' $DOCKER stop -t 40 "$name")
  code=$($DOCKER inspect -f '{{.State.ExitCode}}' "$name")
  echo "   docker stop took $took s, exit code $code"
  [ "$code" = 0 ] || fail "$name exited $code on SIGTERM"
  $DOCKER logs "$name" >"$WORK/$name.log" 2>&1
  if grep -q Traceback "$WORK/$name.log"; then
    sed 's/^/   /' "$WORK/$name.log" | tail -40
    fail "a traceback in $name's log"
  fi
  grep -q "stopping: no new updates" "$WORK/$name.log" || fail "$name did not stop gracefully"
}

step "build $IMAGE (PYTHON_IMAGE=$PYTHON_IMAGE, TORCH_INDEX=$TORCH_INDEX)"
started=$SECONDS
$DOCKER build --network host --build-arg PYTHON_IMAGE="$PYTHON_IMAGE" \
  --build-arg TORCH_INDEX="$TORCH_INDEX" -t "$IMAGE" . >"$WORK/build.log" 2>&1 ||
  { tail -30 "$WORK/build.log"; fail "the build"; }
echo "   built in $((SECONDS - started)) s, $($DOCKER image inspect -f '{{.Size}}' "$IMAGE" |
  awk '{printf "%.2f GB", $1 / 1e9}')"
$DOCKER run --rm "$IMAGE" python -c 'import torch; print("   torch", torch.__version__)'

step "no token: one line, exit 2"
code=0
out=$($DOCKER run --rm --env-file .env.example "$IMAGE" 2>&1) || code=$?
echo "   $out"
[ "$code" = 2 ] && [ "$(printf '%s\n' "$out" | wc -l)" = 1 ] || fail "exit $code, $out"

step "tiny demo models for the image to load (read-only mount)"
mkdir -p "$WORK/models"
chmod 755 "$WORK" "$WORK/models"
MODELS=$(TQDM_DISABLE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 $PY -c '
import json, sys
from pathlib import Path
from bot.offline.demo_models import build_demo_models
root = Path(sys.argv[1])
print(json.dumps({task: "/demo-models/" + str(Path(path).relative_to(root))
                  for task, path in build_demo_models(root).items()}))' "$WORK/models")
chmod -R a+rX "$WORK/models"
METRICS_PORT=$(free_port)

step "start with --env-file .env.example on a fresh volume (SQLite by default)"
chat first
run "$NAME" -v "$VOLUME:/data"
wait_healthy "$NAME"
uid=$($DOCKER exec "$NAME" id -u)
echo "   runs as uid $uid ($($DOCKER exec "$NAME" id -un))"
[ "$uid" = 10001 ] || fail "runs as uid $uid"
db=$($DOCKER exec "$NAME" stat -c '%u %n' /data/hfbot.db) || fail "no /data/hfbot.db"
echo "   database: $db"
[ "${db%% *}" = 10001 ] || fail "the database is owned by ${db%% *}"
$DOCKER exec "$NAME" hfbot healthcheck | sed 's/^/   /'

step "answers through the emulator"
chat_done first

step "SIGTERM stops it cleanly"
stop_cleanly "$NAME"

step "started again on the same volume: healthy, remembers what was set"
$DOCKER rm -v "$NAME" >/dev/null
chat again
run "$NAME" -v "$VOLUME:/data"
wait_healthy "$NAME"
chat_done again
stop_cleanly "$NAME"

if [ -n "${SMOKE_POSTGRES_URL:-}" ]; then
  step "on PostgreSQL ($SMOKE_POSTGRES_URL)"
  chat first
  run "$NAME-pg" -e DATABASE_URL="$SMOKE_POSTGRES_URL"
  wait_healthy "$NAME-pg"
  chat_done first
  stop_cleanly "$NAME-pg"
else
  step "PostgreSQL: skipped (set SMOKE_POSTGRES_URL to an empty database to check it)"
fi

step "all checks passed"
