# The project's container image, two targets from one lock (docs/ARCHITECTURE.md,
# "The code on remote workers", says why it is built this way):
#
#   docker build --target pipeline -t IMAGE .      Kubeflow Pipelines / Vertex AI: every
#                                                   component runs the project here
#   docker build --target beam-worker -t IMAGE .   Beam's sdk_container_image (Dataflow,
#                                                   Flink, Spark): Beam's boot as entry point
#
# Both hold exactly uv.lock's packages (no dev group, no extras) in /opt/venv, and the
# project installed from the sources, not editable.

# The Python that uv.lock was resolved for (pyproject.toml: >=3.10,<3.11).
ARG PYTHON_IMAGE=python:3.10-slim-bookworm
# Beam's SDK image of the locked apache-beam version: the source of its Go boot.
ARG BEAM_SDK_IMAGE=apache/beam_python3.10_sdk:2.74.0

FROM ${BEAM_SDK_IMAGE} AS beam-sdk

FROM ${PYTHON_IMAGE} AS base
ENV UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1
RUN pip install --no-cache-dir uv==0.13.10
WORKDIR /project
# The dependencies first, so that a change of code does not reinstall them.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY pipeline_config.py ./
COPY pipeline ./pipeline
COPY components ./components
COPY serving ./serving
RUN uv sync --frozen --no-dev --no-editable

FROM base AS pipeline
# The compiled Kubeflow spec names the command (TFX's container entry point); a
# shell gets the project's CLI.
CMD ["python", "-m", "pipeline", "--help"]

FROM base AS beam-worker
COPY --from=beam-sdk /opt/apache/beam /opt/apache/beam
ENTRYPOINT ["/opt/apache/beam/boot"]
