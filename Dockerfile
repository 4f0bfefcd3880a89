# hfbot: slim, non-root, CPU torch by default.
#
#   docker build -t hfbot .
#   docker run -d --name hfbot --env-file .env -v hfbot-data:/data hfbot
#
# Everything the bot keeps lives in the /data volume, owned by its user (uid 10001):
# the SQLite database (/data/hfbot.db, unless DATABASE_URL names another) and the
# Hugging Face cache with the exported ONNX models (/data/hf-cache).
#
# GPU: the CUDA wheels of torch carry their own CUDA runtime, so the same slim base
# works; name a CUDA wheel index that has the pinned torch (constraints.txt) and run
# with the NVIDIA container toolkit (`docker run --gpus all …`):
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu126 -t hfbot:gpu .
# (cu128 and cu130 carry it too, for the newest GPUs and drivers.)
#
# deploy/smoke-image.sh builds this image and checks it runs (see docs/operating.md).
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/data/hf-cache \
    DATABASE_URL=sqlite+aiosqlite:////data/hfbot.db \
    HFBOT_METRICS_PORT=8081

RUN useradd --create-home --uid 10001 hfbot \
    && mkdir -p /data/hf-cache \
    && chown -R hfbot /data

WORKDIR /app
COPY constraints.txt ./
RUN pip install --index-url "${TORCH_INDEX}" -c constraints.txt torch
COPY pyproject.toml README.md alembic.ini ./
COPY bot ./bot
COPY handlers ./handlers
COPY models ./models
COPY migrations ./migrations
RUN pip install -c constraints.txt .

USER hfbot
VOLUME ["/data"]
EXPOSE 8080 8081
HEALTHCHECK --interval=30s --timeout=10s --start-period=90s --retries=3 CMD ["hfbot", "healthcheck"]
STOPSIGNAL SIGTERM
CMD ["hfbot", "run"]
