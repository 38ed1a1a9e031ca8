# syntax=docker/dockerfile:1
# One image for the function (`serve`, the default) and the poller sidecar
# (`poll`). Build and runtime are both Debian 12 (bookworm), with its Python
# 3.11, so the venv built here runs unchanged in the distroless stage.
#
#   docker build -t function-litellm-keys .
#
# Where the public bases cannot be pulled, tools/image/build.sh builds
# stand-ins from Debian packages and passes them as BUILD_IMAGE and
# RUNTIME_IMAGE. A TLS-intercepting network's CA reaches pip as the optional
# build secret `ca` (--secret id=ca,src=/etc/ssl/certs/ca-certificates.crt).
ARG BUILD_IMAGE=debian:12-slim
ARG RUNTIME_IMAGE=gcr.io/distroless/python3-debian12:nonroot

FROM ${BUILD_IMAGE} AS build
RUN apt-get update \
 && apt-get install --no-install-suggests --no-install-recommends --yes python3-venv \
 && rm -rf /var/lib/apt/lists/*
# pip reads PIP_CERT only when the secret is there: without it, the system CAs.
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN --mount=type=secret,id=ca,required=false \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && python3 -m venv /venv/fn && /venv/fn/bin/pip install --upgrade pip
WORKDIR /src
# Dependencies first, so code changes reuse this layer.
COPY pyproject.toml README.md ./
COPY function/__version__.py function/__version__.py
RUN --mount=type=secret,id=ca,required=false \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && /venv/fn/bin/pip install hatchling \
 && /venv/fn/bin/python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml','rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && /venv/fn/bin/pip install -r /tmp/requirements.txt
COPY function function
# hatchling is installed above: no isolated build, so no network here.
RUN /venv/fn/bin/pip install --no-deps --no-build-isolation . && /venv/fn/bin/pip uninstall --yes hatchling pip

FROM ${RUNTIME_IMAGE} AS image
COPY --from=build /venv/fn /venv/fn
ENV PATH=/venv/fn/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
EXPOSE 9443 8080
# Numeric, as kubelet verifies runAsNonRoot only for a numeric user: with
# "nonroot" the poller sidecar (examples/poller/) would not start.
USER 65532:65532
ENTRYPOINT ["/venv/fn/bin/function-litellm-keys"]
CMD ["serve"]
