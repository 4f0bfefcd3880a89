#!/usr/bin/env bash
# For a machine that cannot pull images or reach PyTorch's index (a CI box, an air-gapped
# host): a stand-in for python:3.11-slim made with debootstrap (Debian bookworm's python is
# 3.11), and the CPU torch wheel pip finds here served as a package index on 127.0.0.1.
#
#   sudo deploy/offline-base.sh            # prints the two settings to pass on
#   PYTHON_IMAGE=local/python:3.11-slim TORCH_INDEX=http://127.0.0.1:8765/ deploy/smoke-image.sh
#
# Needs: docker, debootstrap, a Debian mirror. The index server keeps running in the
# background (its pid is printed); stop it with `kill <pid>` when done.
set -euo pipefail
cd "$(dirname "$0")/.."
DOCKER=${DOCKER:-docker}
BASE=${BASE:-local/python:3.11-slim}
PORT=${INDEX_PORT:-8765}
WORK=${WORK:-$(mktemp -d)}
mkdir -p "$WORK"
PIP=${PIP:-.venv/bin/pip}

if ! $DOCKER image inspect "$BASE" >/dev/null 2>&1; then
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$WORK/rootfs" >"$WORK/debootstrap.log"
  tar -C "$WORK/rootfs" -c . | $DOCKER import - local/bookworm:minbase >/dev/null
  mkdir -p "$WORK/base"
  # Containers reach the package index only with this machine's CA bundle inside.
  cp /etc/ssl/certs/ca-certificates.crt "$WORK/base/host-ca-bundle.crt"
  cat >"$WORK/base/Dockerfile" <<'X'
FROM local/bookworm:minbase
COPY host-ca-bundle.crt /etc/ssl/certs/ca-certificates.crt
RUN python3 -m venv /usr/local/py
ENV PATH=/usr/local/py/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
X
  $DOCKER build -q -t "$BASE" "$WORK/base" >/dev/null
fi

torch=$(sed -n 's/^torch==//p' constraints.txt)
$PIP download --quiet --only-binary=:all: -d "$WORK/wheels" "torch==$torch+cpu"
for wheel in "$WORK"/wheels/*.whl; do
  file=$(basename "$wheel")
  name=$(echo "${file%%-*}" | tr 'A-Z_.' 'a-z--')
  mkdir -p "$WORK/index/$name"
  ln -f "$wheel" "$WORK/index/$name/$file"
done
nohup python3 -m http.server "$PORT" --bind 127.0.0.1 --directory "$WORK/index" >"$WORK/index.log" 2>&1 &
echo "index server pid $! (serving $WORK/index)"
echo "PYTHON_IMAGE=$BASE TORCH_INDEX=http://127.0.0.1:$PORT/"
