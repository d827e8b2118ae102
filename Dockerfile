# syntax=docker/dockerfile:1
# Sentinel's one image: the worker by default; the retrainer, the MLflow server, the topic
# set-up and the dashboard in docker-compose.yml run it with another command.

# ---- builder: every dependency as a wheel (compilers stay here) ---------------------------
FROM python:3.11-slim AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.m[d] ./
COPY sentinel ./sentinel
COPY schemas ./schemas
COPY features ./features
COPY stream_app ./stream_app
COPY training ./training
# psycopg2: the compose MLflow server keeps its registry in PostgreSQL.
RUN pip wheel --wheel-dir /wheels ".[dashboard]" "psycopg2-binary>=2.9"

# ---- runtime: wheels only, non-root ----------------------------------------------------------
FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH \
    SENTINEL_DATA_DIR=/data \
    SENTINEL_WORKER__WEB_HOST=0.0.0.0 \
    SENTINEL_WORKER__WEB_PORT=6066
# libgomp1: LightGBM's OpenMP runtime.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 sentinel \
 && useradd --system --uid 10001 --gid sentinel --home-dir /home/sentinel --create-home sentinel \
 && mkdir -p /data /mlartifacts \
 && chown sentinel:sentinel /data /mlartifacts
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv /opt/venv \
 && pip install --no-index --find-links=/wheels sentinel-fraud[dashboard] psycopg2-binary
WORKDIR /home/sentinel
USER sentinel
EXPOSE 6066 6067 8501
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('SENTINEL_WORKER__WEB_PORT', '6066'), timeout=4)"]
CMD ["sentinel", "worker"]
