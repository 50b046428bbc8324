# syntax=docker/dockerfile:1
# One image for every Kadence role: kadence operator | api | worker | dispatcher | migrate.
ARG PYTHON_IMAGE=python:3.11-slim

# --- builder: the kadence wheel and the wheels of its dependencies ---------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m pip install "build>=1.2"
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN python -m build --wheel --outdir /wheels . \
 && python -m pip wheel --wheel-dir /wheels /wheels/kadence-*.whl

# --- final: the installed wheel, no build tools, a non-root user -----------------------------
FROM ${PYTHON_IMAGE}
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --system --gid 10001 kadence \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin kadence
# Installed from the builder's wheels only (no index, no compiler); pip compiles the
# bytecode at install time, so a read-only root filesystem costs nothing at start.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m pip install --no-index --find-links /wheels kadence \
 && python -m pip uninstall --yes setuptools wheel pip
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080
ENTRYPOINT ["kadence"]
CMD ["--help"]
LABEL org.opencontainers.image.title="kadence" \
      org.opencontainers.image.description="Kadence: a task scheduler for Kubernetes (operator, API, dispatcher, workers)" \
      org.opencontainers.image.source="https://github.com/kadence-dev/kadence" \
      org.opencontainers.image.licenses="Apache-2.0"
