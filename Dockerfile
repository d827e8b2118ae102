# Sentinel's one image: the worker by default; the retrainer, the MLflow server, the topic
# set-up and the dashboard in docker-compose.yml run it with another command.
#
# Classic builder compatible (docker-compose v1, no BuildKit). Dependencies come pinned from
# constraints.txt, as in the venv (`pip install -c constraints.txt .`).
# PYTHON_IMAGE: python:3.11-slim from a registry, or the local stand-in built from Debian's
# python3.11 by scripts/build-local-images.sh (docker-compose.local.yml sets it).
ARG PYTHON_IMAGE=python:3.11-slim

# One stage: every dependency ships as a wheel, so no compiler is installed and a builder stage
# would only add a copy of the 1 GB venv (minutes under the classic builder).
FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GIT_PYTHON_REFRESH=quiet \
    PATH=/opt/venv/bin:$PATH \
    SENTINEL_DATA_DIR=/data \
    SENTINEL_WORKER__WEB_HOST=0.0.0.0 \
    SENTINEL_WORKER__WEB_PORT=6066
# libgomp1: LightGBM's OpenMP runtime. curl: healthchecks and the quick start's /predict call.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 curl \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && groupadd --system --gid 10001 sentinel \
 && useradd --system --uid 10001 --gid sentinel --home-dir /home/sentinel --create-home sentinel \
 && mkdir -p /data /mlartifacts \
 && chown sentinel:sentinel /data /mlartifacts \
 && python -m venv /opt/venv
WORKDIR /src
# Dependencies first, from pyproject + constraints only, with empty packages (and an empty
# README, which pyproject names): this layer is rebuilt when pyproject.toml or constraints.txt
# change, not on every source or README edit.
# psycopg2: the compose MLflow server keeps its registry in PostgreSQL.
COPY pyproject.toml constraints.txt ./
RUN mkdir sentinel schemas features drift training lifecycle stream_app dashboard cli && touch README.md \
 && pip install -q -c constraints.txt ".[dashboard]" psycopg2-binary \
 && pip uninstall -q -y sentinel-fraud \
 && rm -rf sentinel schemas features drift training lifecycle stream_app dashboard cli build *.egg-info
COPY README.m[d] ./
COPY sentinel ./sentinel
COPY schemas ./schemas
COPY features ./features
COPY stream_app ./stream_app
COPY drift ./drift
COPY training ./training
COPY lifecycle ./lifecycle
COPY dashboard ./dashboard
COPY cli ./cli
RUN pip install -q -c constraints.txt --no-deps . \
 && pip check \
 && cd / && rm -rf /src
WORKDIR /home/sentinel
USER sentinel
EXPOSE 6066 6067 8501
# Readiness, not liveness: /ready answers 200 only once the worker can score.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD curl -fsS -o /dev/null "http://127.0.0.1:${SENTINEL_WORKER__WEB_PORT}/ready" || exit 1
CMD ["sentinel", "worker"]
