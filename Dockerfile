# The platform image: Dagster code location, webserver and daemon, and the evidently UI (same image,
# different commands).
# Code and dependencies only: no secrets, no .env, no models (see .dockerignore).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# OMP_NUM_THREADS=1: runs go side by side (the run queue, a Docker or Kubernetes run per
# container), each computing on one thread, as the embedded launcher's runs do; a run's own
# torch/OpenMP threads would only fight its siblings for the cores. Set it per service to override.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/home MLOPS_PROJECT_DIR=/opt/mlops PATH=/opt/venv/bin:$PATH \
    OMP_NUM_THREADS=1

WORKDIR /opt/mlops
# Exactly the tested versions: requirements.lock (hashes checked, nothing resolved), as `make setup`
# installs them. torch is its CPU build, from PyTorch's CPU index. For an offline build, serve a
# wheelhouse over HTTP (`pip download --no-deps -r requirements.lock -d wheels` plus the build tools
# of the lock's sdists: `pip download "setuptools-scm[toml]>=6.2" wheel -d wheels`) and pass
# --network host --build-arg PIP_NO_INDEX=1 --build-arg PIP_FIND_LINKS=http://127.0.0.1:<port>/.
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PIP_FIND_LINKS=
ARG PIP_NO_INDEX=0
COPY requirements.lock ./
RUN python3 -m venv /opt/venv \
    && pip install --no-deps --require-hashes -r requirements.lock \
    && rm -rf /opt/venv/lib/python3.11/site-packages/torch/include
COPY pyproject.toml README.md ./
COPY mlops_pipeline ./mlops_pipeline
RUN pip install --no-deps --no-build-isolation .
COPY teams ./teams
COPY ludwig_configs ./ludwig_configs
COPY deploy/dagster/dagster.yaml deploy/dagster/workspace.yaml /opt/dagster/home/

# The named volumes mounted on /opt/dagster/state (MLOPS_HOME), /opt/evidently/workspace and
# /opt/mlops-bundles (staged model bundles) take these folders' owner on first mount.
RUN useradd --create-home --uid 10001 mlops \
    && mkdir -p /opt/dagster/state /opt/evidently/workspace /opt/mlops-bundles \
    && chown -R mlops /opt/dagster /opt/evidently /opt/mlops-bundles
USER mlops
EXPOSE 3000 4000 8000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "mlops_pipeline.definitions"]
