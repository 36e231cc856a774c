#!/usr/bin/env bash
# Make the local base image docker.io/library/debian:bookworm-slim without a registry:
# debootstrap a minimal Debian bookworm from the mirror that apt on this host already uses,
# slim it like the official image (no docs/man/locales, apt lists and caches removed),
# and `podman import` it.  Idempotent: does nothing when the image already exists.
#
# Usage (as root): tests/container/build_base.sh [IMAGE_NAME]
# Environment: DEBIAN_MIRROR overrides the mirror found in /etc/apt; FORCE=1 rebuilds.
set -euo pipefail

IMAGE="${1:-docker.io/library/debian:bookworm-slim}"
SUITE="${SUITE:-bookworm}"

if [ "${FORCE:-0}" != "1" ] && podman image exists "$IMAGE"; then
    echo "build_base: $IMAGE already exists, nothing to do"
    exit 0
fi

for tool in debootstrap podman tar; do
    command -v "$tool" >/dev/null || { echo "build_base: $tool not found" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "build_base: debootstrap needs root" >&2; exit 1; }

find_mirror() {
    # deb822 sources first: the URIs of the stanza whose Suites holds "$SUITE" (not -security/-updates)
    local f uri
    for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri="$(awk -v suite="$SUITE" '
            BEGIN { RS = ""; FS = "\n" }
            {
                uri = ""; ok = 0
                for (i = 1; i <= NF; i++) {
                    if ($i ~ /^URIs:/)   { split($i, a, /[ \t]+/); uri = a[2] }
                    if ($i ~ /^Suites:/) { n = split($i, s, /[ \t]+/); for (j = 2; j <= n; j++) if (s[j] == suite) ok = 1 }
                }
                if (ok && uri != "") { print uri; exit }
            }' "$f")"
        if [ -n "$uri" ]; then echo "$uri"; return 0; fi
    done
    return 1
}
find_mirror_list() {
    # one-line format: "deb [opts] URI bookworm main"
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
        | awk -v suite="$SUITE" '$1 == "deb" {
              for (i = 2; i <= NF; i++) if ($i == suite) { u = $(i - 1); print u; exit } }'
}

MIRROR="${DEBIAN_MIRROR:-}"
[ -n "$MIRROR" ] || MIRROR="$(find_mirror || true)"
[ -n "$MIRROR" ] || MIRROR="$(find_mirror_list || true)"
[ -n "$MIRROR" ] || MIRROR="http://deb.debian.org/debian"
echo "build_base: debootstrap $SUITE from $MIRROR"

WORK="$(mktemp -d /var/tmp/bids-factory-base.XXXXXX)"
trap 'rm -rf --one-file-system "$WORK"' EXIT
ROOTFS="$WORK/rootfs"

# debootstrap downloads with wget, whose defaults wait 900 s on a stalled read and try 20 times: a stalled
# connection to the mirror is given up after 60 s and tried again instead.
printf 'read_timeout = 60\nconnect_timeout = 30\ntries = 5\nwaitretry = 5\n' >"$WORK/wgetrc"
export WGETRC="$WORK/wgetrc"
debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || {
    tail -n 30 "$WORK/debootstrap.log" >&2
    exit 1
}

# What the official slim image does: keep dpkg from installing docs/man pages/locales later,
# clean apt caches after every install, never install recommends.
mkdir -p "$ROOTFS/etc/dpkg/dpkg.cfg.d" "$ROOTFS/etc/apt/apt.conf.d"
cat >"$ROOTFS/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
EOF
cat >"$ROOTFS/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
cat >"$ROOTFS/etc/apt/apt.conf.d/docker-no-recommends" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
EOF
# Same as the already-installed files would look after the exclusions above.
find "$ROOTFS/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
find "$ROOTFS/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
rm -rf "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* "$ROOTFS"/usr/share/locale/*
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin \
       "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/cache/apt/archives/partial/* \
       "$ROOTFS"/var/log/* "$ROOTFS"/tmp/* "$ROOTFS"/var/tmp/*
# apt inside the image uses the same sources as this host (official image: bookworm, -updates, -security).
if [ -f /etc/apt/sources.list.d/debian.sources ] && [ -z "${DEBIAN_MIRROR:-}" ]; then
    cp /etc/apt/sources.list.d/debian.sources "$ROOTFS/etc/apt/sources.list.d/debian.sources"
    rm -f "$ROOTFS/etc/apt/sources.list"
fi
# debootstrap copies the host's resolv.conf/hostname; the container runtime provides its own.
: >"$ROOTFS/etc/resolv.conf"
echo localhost >"$ROOTFS/etc/hostname"

tar --numeric-owner -C "$ROOTFS" -cf - . \
    | podman import --change 'CMD ["bash"]' - "$IMAGE" >/dev/null
echo "build_base: imported $IMAGE"
podman image ls "$IMAGE"
