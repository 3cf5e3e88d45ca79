#!/usr/bin/env bash
# Remove the charge point controller.  Keeps /etc/chargepoint (config) and /var/lib/chargepoint
# (state) unless --purge, which also removes the chargepoint user.  See docs/install.md.
#
#   sudo install/uninstall.sh [--purge]
#   install/uninstall.sh --root DIR [--purge]    staged: system commands go to
#                                                DIR/commands-not-run.log
set -euo pipefail

SERVICE=chargepoint
SERVICE_USER=chargepoint
PREFIX=/opt/chargepoint
CONF_DIR=/etc/chargepoint
STATE_DIR=/var/lib/chargepoint
UNIT_DIR=/etc/systemd/system
UNIT=$SERVICE.service

ROOT=${DESTDIR:-}
PURGE=0

usage() {
    cat <<USAGE
usage: $0 [--root DIR] [--purge]

  --root DIR   remove from the tree staged under DIR (also: DESTDIR=DIR); useradd/systemctl
               style commands are written to DIR/commands-not-run.log instead of run
  --purge      also remove the configuration, the state (transactions not yet delivered!)
               and the chargepoint user
USAGE
}

while [ $# -gt 0 ]; do
    case "$1" in
        --root) ROOT=${2:?--root needs a directory}; shift 2 ;;
        --root=*) ROOT=${1#*=}; shift ;;
        --purge) PURGE=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "uninstall.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done

say() { echo "chargepoint: $*"; }

if [ -n "$ROOT" ]; then
    ROOT=$(realpath -m "$ROOT")
    if [ "$ROOT" = / ]; then
        echo "uninstall.sh: --root / is this system: run without --root (as root) instead" >&2
        exit 2
    fi
    NOT_RUN=$ROOT/commands-not-run.log
    system() { echo "$*" >>"$NOT_RUN"; echo "  not run (--root): $*"; }
else
    if [ "$(id -u)" -ne 0 ]; then
        echo "uninstall.sh: run as root (sudo $0), or use --root DIR" >&2
        exit 1
    fi
    system() { echo "  + $*"; "$@"; }
fi

# Stopping the service drives every output safe (SIGTERM) before anything is removed.
if [ -e "$ROOT$UNIT_DIR/$UNIT" ]; then
    system systemctl disable --now "$UNIT" || true
fi
rm -f "$ROOT$UNIT_DIR/$UNIT"
system systemctl daemon-reload
rm -rf "$ROOT$PREFIX"
say "removed $PREFIX and $UNIT_DIR/$UNIT"

if [ "$PURGE" = 1 ]; then
    rm -rf "$ROOT$CONF_DIR" "$ROOT$STATE_DIR"
    if [ -n "$ROOT" ] || id "$SERVICE_USER" >/dev/null 2>&1; then
        system userdel "$SERVICE_USER"
    fi
    say "purged $CONF_DIR, $STATE_DIR and the user $SERVICE_USER"
else
    say "kept $CONF_DIR (configuration) and $STATE_DIR (state); --purge removes them"
fi
