#!/usr/bin/env bash
# Rehearses the README's two set-up commands on a new Debian 12 machine: a debootstrap root
# (Debian's packages only, nothing installed by hand), a clean clone of HEAD copied in, then
# `bash scripts/demo.sh` and `bash scripts/test.sh` inside a chroot, each timed.
# Not part of CI (it takes ~40 minutes on 2 cores). Run as root from a clone:
#   bash scripts/fresh-rehearsal.sh [WORK_DIR]        (default /var/tmp/edgequant-rehearsal)
# The debootstrapped base is kept in WORK_DIR/base and copied afresh for every run, so each run
# starts from the same new root; logs and timings go to WORK_DIR/*.log and WORK_DIR/times.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
WORK=${1:-/var/tmp/edgequant-rehearsal}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
[ "$(id -u)" -eq 0 ] || { echo "fresh-rehearsal: run as root (debootstrap, chroot)"; exit 2; }
command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap
mkdir -p "$WORK"

if [ ! -f "$WORK/base/etc/debian_version" ]; then
  echo "fresh-rehearsal: debootstrap bookworm into $WORK/base"
  rm -rf "$WORK/base.partial"
  debootstrap --variant=minbase bookworm "$WORK/base.partial" "$MIRROR" > "$WORK/debootstrap.log" 2>&1 ||
    { tail -20 "$WORK/debootstrap.log"; exit 1; }
  cat > "$WORK/base.partial/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb ${MIRROR%/debian}/debian-security bookworm-security main
EOF
  mv "$WORK/base.partial" "$WORK/base"
fi

ROOT="$WORK/root"
cleanup() {
  for m in dev/pts dev proc sys; do mountpoint -q "$ROOT/$m" && umount -l "$ROOT/$m"; done
  return 0
}
trap cleanup EXIT
cleanup
rm -rf "$ROOT"
cp -a "$WORK/base" "$ROOT"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
# The workplace's network, as every machine of it has it (not the project's): TLS to the package
# registries goes through an egress proxy whose CA the machines trust, and npm is pointed at it.
mkdir -p "$ROOT/usr/local/share/ca-certificates" "$ROOT/etc/ssl/certs"
cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/" 2>/dev/null || true
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt" 2>/dev/null || true
for f in /etc/npmrc /root/.npmrc; do [ -f "$f" ] && cp "$f" "$ROOT$f"; done
# A clean clone of the committed HEAD: what a user gets, without this tree's build or node_modules.
mkdir -p "$ROOT/work"
git clone -q --no-hardlinks "$REPO" "$ROOT/work/edgequant"
git -C "$ROOT/work/edgequant" log -1 --format='fresh-rehearsal: clone at %h %s'
mount -t proc proc "$ROOT/proc"
mount --rbind /sys "$ROOT/sys"
mount --rbind /dev "$ROOT/dev"

: > "$WORK/times.txt"
run() {  # name, command: run inside the chroot as root, log and time it
  local name=$1 cmd=$2 start end rc=0
  start=$(date +%s)
  chroot "$ROOT" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 ${NODE_EXTRA_CA_CERTS:+NODE_EXTRA_CA_CERTS=$NODE_EXTRA_CA_CERTS} /bin/bash -c "cd /work/edgequant && $cmd" > "$WORK/$name.log" 2>&1 || rc=$?
  end=$(date +%s)
  printf '%s: exit %d, %d min %d s\n' "$name" "$rc" $(((end - start) / 60)) $(((end - start) % 60)) | tee -a "$WORK/times.txt"
  tail -5 "$WORK/$name.log"
  return 0
}
run demo "bash scripts/demo.sh"
run test "bash scripts/test.sh"
cat "$WORK/times.txt"
