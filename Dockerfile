# syntax=docker/dockerfile:1
# One image for the function (`serve`, the default) and the poller sidecar
# (`poll`). Build and runtime are both Debian 12 (bookworm), with its Python
# 3.11, so the venv built here runs unchanged in the distroless stage.

FROM debian:12-slim AS build
RUN apt-get update \
 && apt-get install --no-install-suggests --no-install-recommends --yes python3-venv \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /venv/fn && /venv/fn/bin/pip install --no-cache-dir --upgrade pip
WORKDIR /src
# Dependencies first, so code changes reuse this layer.
COPY pyproject.toml README.md ./
COPY function/__version__.py function/__version__.py
RUN /venv/fn/bin/pip install --no-cache-dir hatchling \
 && /venv/fn/bin/python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml','rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && /venv/fn/bin/pip install --no-cache-dir -r /tmp/requirements.txt
COPY function function
RUN /venv/fn/bin/pip install --no-cache-dir --no-deps . && /venv/fn/bin/pip uninstall --yes hatchling pip

FROM gcr.io/distroless/python3-debian12:nonroot AS image
COPY --from=build /venv/fn /venv/fn
ENV PATH=/venv/fn/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
EXPOSE 9443 8080
USER nonroot:nonroot
ENTRYPOINT ["/venv/fn/bin/function-litellm-keys"]
CMD ["serve"]
