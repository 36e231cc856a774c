#!/usr/bin/env bash
# Run a command inside the Debian sid root of tests/container/apptainer_root.sh, where apptainer works
# (it needs / to be a mount point, private mount propagation and its own /tmp: a plain chroot is not enough).
# Everything happens in a private mount namespace (unshare -m): nothing stays mounted when the command ends.
#
# Usage (as root): tests/container/apptainer_enter.sh ROOT [HOST_PATH[:ro] ...] -- COMMAND [ARGS...]
#   every HOST_PATH (a folder) is bound at the same path inside ROOT (read-only with :ro).
set -euo pipefail
if [ "${_BF_APPTAINER_NS:-}" != 1 ]; then
    exec env _BF_APPTAINER_NS=1 unshare -m --propagation private "$0" "$@"
fi
ROOT="$1"; shift
[ -x "$ROOT/usr/bin/apptainer" ] || { echo "apptainer_enter: no apptainer in $ROOT (run tests/container/apptainer_root.sh)" >&2; exit 1; }
mount --make-rprivate /
mount --bind "$ROOT" "$ROOT"
mount -t tmpfs tmpfs "$ROOT/tmp"   # before the binds: a HOST_PATH may lie under /tmp
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
    path="${1%:ro}"
    mkdir -p "$ROOT$path"
    mount --bind "$path" "$ROOT$path"
    if [ "$1" != "$path" ]; then mount -o remount,bind,ro "$ROOT$path"; fi
    shift
done
[ "${1:-}" = "--" ] && shift
mount -t proc proc "$ROOT/proc"
mount --rbind /dev "$ROOT/dev"
mount -t sysfs sys "$ROOT/sys"
cp /etc/resolv.conf /etc/hosts "$ROOT/etc/" 2>/dev/null || true   # name lookups as on the host
cd "$ROOT"
mkdir -p oldroot
pivot_root . oldroot
cd /
umount -l /oldroot
unset _BF_APPTAINER_NS
exec "$@"
