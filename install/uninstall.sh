#!/usr/bin/env bash
# Remove the charge point controller.  Keeps /etc/chargepoint (config) and /var/lib/chargepoint
# (state) unless --purge, which also removes the chargepoint user.  See docs/install.md.
#
#   sudo install/uninstall.sh [--purge]
#   install/uninstall.sh --root DIR [--purge]    staged: system commands go to
#                                                DIR/commands-not-run.log
set -euo pipefail

# shellcheck source=install/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

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

prepare_root uninstall.sh

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
