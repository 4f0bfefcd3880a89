# hfbot: slim, non-root, CPU torch by default.
#
# GPU: the CUDA wheels of torch carry their own CUDA runtime, so the same slim
# base works; pick the CUDA wheel index and run with the NVIDIA container toolkit:
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124 -t hfbot:gpu .
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/data/hf-cache \
    HFBOT_METRICS_PORT=8081

RUN useradd --create-home --uid 10001 hfbot \
    && mkdir -p /data/hf-cache \
    && chown hfbot /data/hf-cache

WORKDIR /app
RUN pip install --index-url "${TORCH_INDEX}" "torch==${TORCH_VERSION}"
COPY pyproject.toml README.md alembic.ini ./
COPY bot ./bot
COPY handlers ./handlers
COPY models ./models
COPY migrations ./migrations
RUN pip install .

USER hfbot
VOLUME ["/data/hf-cache"]
EXPOSE 8080 8081
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ['HFBOT_METRICS_PORT'], timeout=4)"
STOPSIGNAL SIGTERM
CMD ["hfbot", "run"]
