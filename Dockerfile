# The platform image: Dagster code location, webserver and daemon, and the evidently UI (same image,
# different commands).
# Code and dependencies only: no secrets, no .env, no models (see .dockerignore).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/home MLOPS_PROJECT_DIR=/opt/mlops

WORKDIR /opt/mlops
# Same three steps as `make setup`: CPU torch, the project, ludwig without its dependencies.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install "torch==2.13.0" --index-url "${TORCH_INDEX_URL}"
COPY pyproject.toml README.md ./
COPY mlops_pipeline ./mlops_pipeline
RUN pip install . && pip install --no-deps "ludwig==0.11.0"
COPY teams ./teams
COPY ludwig_configs ./ludwig_configs
COPY deploy/dagster/dagster.yaml deploy/dagster/workspace.yaml /opt/dagster/home/

# /opt/mlops-bundles: the named volume of staged model bundles takes this owner on first mount.
RUN useradd --create-home --uid 10001 mlops \
    && mkdir -p /opt/evidently/workspace /opt/mlops-bundles \
    && chown -R mlops /opt/dagster/home /opt/evidently /opt/mlops-bundles
USER mlops
EXPOSE 3000 4000 8000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "mlops_pipeline.definitions"]
