#!/usr/bin/env bash
# Make a Debian sid root with Debian's apptainer (not packaged for bookworm), for the `apptainer` tests.
# Idempotent: does nothing when ROOT already has apptainer; a half-made root is never left at ROOT
# (it is built beside it and renamed). Kept between runs: CI on one machine reuses it.
#
# Usage (as root): tests/container/apptainer_root.sh [ROOT]
#   ROOT defaults to /var/cache/bids-factory-tests/apptainer-sid
# Environment: DEBIAN_MIRROR overrides the mirror apt on this host uses; FORCE=1 rebuilds.
# Enter it with tests/container/apptainer_enter.sh (a private mount namespace).
set -euo pipefail

ROOT="${1:-/var/cache/bids-factory-tests/apptainer-sid}"

configure() {
    chmod 755 "$1"   # mktemp made it 0700: it becomes /, which every user must be able to enter
    # This machine's containers lack CAP_SYS_RESOURCE: apptainer as root must not ask for every
    # capability (it would fail with "Requesting capability set ..."); a .def build as root then
    # needs --fakeroot, which needs root's subordinate ids.
    sed -i 's/^root default capabilities = .*/root default capabilities = no/' "$1/etc/apptainer/apptainer.conf"
    echo "root:100000:65536" >"$1/etc/subuid"
    echo "root:100000:65536" >"$1/etc/subgid"
}

if [ "${FORCE:-0}" != "1" ] && [ -x "$ROOT/usr/bin/apptainer" ] && [ -x "$ROOT/usr/bin/mksquashfs" ]; then
    configure "$ROOT"
    echo "apptainer_root: $ROOT has apptainer, nothing to do"
    exit 0
fi
for tool in debootstrap unshare; do
    command -v "$tool" >/dev/null || { echo "apptainer_root: $tool not found" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "apptainer_root: debootstrap needs root" >&2; exit 1; }

MIRROR="${DEBIAN_MIRROR:-}"
if [ -z "$MIRROR" ]; then
    MIRROR="$(awk '/^URIs:/ && $2 ~ /\/debian\/?$/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)"
fi
[ -n "$MIRROR" ] || MIRROR="$(awk '$1 == "deb" && $2 ~ /\/debian\/?$/ {print $2; exit}' \
    /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)"
[ -n "$MIRROR" ] || MIRROR="http://deb.debian.org/debian"

mkdir -p "$(dirname "$ROOT")"
WORK="$(mktemp -d "$ROOT.new.XXXXXX")"
trap 'rm -rf --one-file-system "$WORK" "$WORK.wgetrc"' EXIT
# debootstrap downloads with wget, whose defaults wait 900 s on a stalled read and try 20 times: a stalled
# connection to the mirror is given up after 60 s and tried again instead (apt below likewise).
printf 'read_timeout = 60\nconnect_timeout = 30\ntries = 5\nwaitretry = 5\n' >"$WORK.wgetrc"
export WGETRC="$WORK.wgetrc"
echo "apptainer_root: debootstrap sid from $MIRROR into $WORK"
debootstrap --variant=minbase sid "$WORK" "$MIRROR" >"$WORK.log" 2>&1 || { tail -n 30 "$WORK.log" >&2; exit 1; }
# apt in a private mount namespace: /proc is unmounted with it, whatever happens
unshare -m sh -c '
    mount -t proc proc "$1/proc"
    chroot "$1" sh -c "apt-get -qq -o Acquire::Check-Valid-Until=false -o Acquire::http::Timeout=60 \
            -o Acquire::Retries=3 update \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            -o Acquire::http::Timeout=60 -o Acquire::Retries=3 \
            apptainer squashfs-tools uidmap ca-certificates >/dev/null"
' sh "$WORK" >>"$WORK.log" 2>&1 || { tail -n 30 "$WORK.log" >&2; exit 1; }
rm -rf "$WORK"/var/lib/apt/lists/* "$WORK"/var/cache/apt/archives/*.deb "$WORK.log"
configure "$WORK"
rm -rf --one-file-system "$ROOT"
mv "$WORK" "$ROOT"
rm -f "$WORK.wgetrc"
trap - EXIT
echo "apptainer_root: ready: $ROOT ($("$ROOT/usr/bin/apptainer" --version 2>/dev/null || echo apptainer))"
