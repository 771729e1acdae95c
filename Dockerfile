# syntax=docker/dockerfile:1
#
# The multusd image: one image for both the daemon (`multusd run`, the DaemonSet's main container)
# and the host installer (`multusd install`, its init container).
#
#   docker build -t multusd:0.1.0 .
#   # byte-for-byte repeatable builds (BuildKit also clamps file and layer times to it):
#   docker buildx build --build-arg SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) -t multusd:0.1.0 .
#   # a K3s node without a registry:
#   docker save multusd:0.1.0 | sudo k3s ctr images import -
#
# tests/integration/test_image_steps.py performs the build stage's steps into a temporary prefix
# (there is no Docker engine in CI) and runs `multusd --version` and `multusd install` from it;
# keep the RUN lines in the shape it parses.

# Pinned by tag (Debian 12 + CPython 3.11). Pin by digest too for fully repeatable builds:
#   --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest>
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------- build
FROM ${PYTHON_IMAGE} AS build
# 1980-01-01, the oldest time a wheel (zip) can hold; override as shown above.
ARG SOURCE_DATE_EPOCH=315532800
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY multusd/ multusd/
# multusd's wheel plus a wheel of every dependency (all have binary wheels for CPython 3.11 on
# glibc, so no compiler is needed, and none ends up in the image).
RUN pip wheel --no-cache-dir --wheel-dir /wheels .
# A venv without pip, filled from the wheelhouse only; then every module compiled once, with
# unchecked-hash .pyc files: repeatable (no source mtimes inside) and never re-validated or
# rewritten at run time. Without .pyc files the daemon imports ~4x slower and uses ~20 MB more
# (python-costs.md §10).
RUN python -m venv --without-pip /opt/multusd
RUN pip --python /opt/multusd/bin/python install --no-cache-dir --no-index --find-links /wheels --no-compile multusd
RUN python -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/multusd/lib

# ---------------------------------------------------------------------------------------- final
FROM ${PYTHON_IMAGE}
ARG SOURCE_DATE_EPOCH=315532800
LABEL org.opencontainers.image.title="multusd" \
      org.opencontainers.image.description="Multus CNI thick plugin for K3s + Flannel, in Python" \
      org.opencontainers.image.licenses="Apache-2.0"
# Debian's containernetworking-plugins: /usr/lib/cni/{ipvlan,macvlan,...}, which `multusd install
# --plugins` copies to the host (K3s ships neither ipvlan nor macvlan). The base image's own pip,
# setuptools and wheel go: nothing installs packages at run time.
RUN apt-get update \
 && apt-get install -y --no-install-recommends containernetworking-plugins \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /var/cache/debconf/*-old /var/log/apt /var/log/dpkg.log \
 && pip uninstall --no-cache-dir -y -q pip setuptools wheel
COPY --from=build /opt/multusd /opt/multusd
# multus-shim and passthru: run on the HOST's python3, copied there by `multusd install`.
COPY shim/ /usr/src/multusd/shim/
ENV PATH=/opt/multusd/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ENTRYPOINT ["multusd"]
CMD ["run", "--config", "/etc/cni/net.d/multus.d/daemon-config.json"]
