# bids-factory container image: hospital hosts (docker/podman) and, through Singularity.def, HPC.
#
#   docker build -t bids-factory --build-arg VERSION=0.1.0 .
#   docker run --rm --user "$(id -u):$(id -g)" \
#       -v /export:/data/export:ro -v /bids:/data/bids bids-factory convert /data/export /data/bids
#
# Built from Debian's own python3 so that it also builds from a locally made Debian base
# (tests/container/build_base.sh) without any registry. See docs/containers.md.
ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim

# ---------------------------------------------------------------------------------------------
# base: Debian's python3 (3.11) (images are gzipped by ISA-L, a wheel: no pigz), shared by both stages so
# that apt runs once; python3-venv (~3 MB) is only there to make the venv in the builder
# ---------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS base
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb /var/log/apt /var/log/dpkg.log \
    && mkdir -p /data/export /data/bids \
    && useradd --uid 1000 --user-group --no-create-home --home-dir /tmp --shell /usr/sbin/nologin bids

# ---------------------------------------------------------------------------------------------
# builder: a venv at /opt/bids-factory with the package and every runtime dependency
# ---------------------------------------------------------------------------------------------
FROM base AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

RUN python3 -m venv /opt/bids-factory

# Dependencies first (their own layer: a code change does not re-download them).
# The `extra_ca` secret is only for builds behind an intercepting proxy: pass the host's CA bundle
# with `--secret id=extra_ca,src=/etc/ssl/certs/ca-certificates.crt`; without it this is a no-op.
COPY pyproject.toml /src/pyproject.toml
RUN --mount=type=secret,id=extra_ca \
    if [ -s /run/secrets/extra_ca ]; then export PIP_CERT=/run/secrets/extra_ca; fi \
    && /opt/bids-factory/bin/python -c 'import tomllib; print("\n".join(tomllib.load(open("/src/pyproject.toml", "rb"))["project"]["dependencies"]))' \
        > /tmp/requirements.txt \
    && /opt/bids-factory/bin/pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The package itself (the wheel carries heuristics/ and schemas/ as package data). Dropped: pip and
# setuptools, the test suites bundled in the dependencies (pandas, scipy, numpy, nibabel: ~110 MB) and
# the validator bundle's 16 MB source map (only used to prettify the validator's own stack traces).
COPY . /src
RUN --mount=type=secret,id=extra_ca \
    if [ -s /run/secrets/extra_ca ]; then export PIP_CERT=/run/secrets/extra_ca; fi \
    && /opt/bids-factory/bin/pip install --no-cache-dir /src \
    && /opt/bids-factory/bin/pip uninstall -y pip setuptools \
    && find /opt/bids-factory/lib/python3.11/site-packages -mindepth 2 -type d -name tests -prune -exec rm -rf {} + \
    && rm -f /opt/bids-factory/lib/python3.11/site-packages/bids_validator_deno/*.js.map \
    && /opt/bids-factory/bin/bids-factory --version

# ---------------------------------------------------------------------------------------------
# runtime: base + the venv; nothing else
# ---------------------------------------------------------------------------------------------
FROM base AS runtime

COPY --from=builder /opt/bids-factory /opt/bids-factory

# Any uid may run this image (--user, Apptainer): nothing is written outside the output folder
# and $TMPDIR; every tool's home/cache points into /tmp (mount a tmpfs there with --read-only).
ENV PATH=/opt/bids-factory/bin:${PATH} \
    LANG=C.UTF-8 \
    LC_ALL=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    XDG_CONFIG_HOME=/tmp/.config \
    DENO_DIR=/tmp/.cache/deno \
    DENO_NO_UPDATE_CHECK=1 \
    DENO_NO_PROMPT=1

# The version label names the installed package. The RUN checks it, and it is also what makes a
# cached build take a new --build-arg VERSION: buildah/podman key a cached LABEL step on its text
# only, a RUN step on the build arguments' values too, so the LABEL after it is made again.
ARG VERSION=0.0.0+unknown
ARG SOURCE=https://github.com/bids-factory/bids-factory
RUN if [ "$VERSION" != "0.0.0+unknown" ] && [ "$(bids-factory --version)" != "bids-factory $VERSION" ]; then \
        echo "--build-arg VERSION=$VERSION, but the package is $(bids-factory --version)" >&2; exit 1; \
    fi
LABEL org.opencontainers.image.title="bids-factory" \
      org.opencontainers.image.description="Turns a hospital's daily depersonalised DICOM/NIfTI + EHR exports into one growing, validator-clean BIDS dataset." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.url="${SOURCE}" \
      org.opencontainers.image.documentation="${SOURCE}/blob/main/docs/containers.md" \
      org.opencontainers.image.licenses="MIT"

USER 1000:1000
WORKDIR /tmp
ENTRYPOINT ["bids-factory"]
CMD ["--help"]
