# Shared by install.sh and uninstall.sh (sourced, not run): where things live, and how a
# command that changes the system is run, or only recorded when staging under --root.

SERVICE=chargepoint
SERVICE_USER=chargepoint
SERVICE_GROUPS=(gpio dialout)
PREFIX=/opt/chargepoint
# One venv per version under releases/, `current` names the one the service starts
# (docs/firmware.md, "Install layout and rollback").  venv/ is the layout before releases.
RELEASES=$PREFIX/releases
CURRENT=$RELEASES/current
OLD_VENV=$PREFIX/venv
CONF_DIR=/etc/chargepoint
CONF=$CONF_DIR/chargepoint.toml
STATE_DIR=/var/lib/chargepoint
UNIT_DIR=/etc/systemd/system
UNIT=$SERVICE.service

say() { echo "chargepoint: $*"; }

# prepare_root NAME: check $ROOT (staging) or root rights, and define `system`.
prepare_root() {
    local name=$1
    if [ -n "$ROOT" ]; then
        ROOT=$(realpath -m "$ROOT")
        if [ "$ROOT" = / ]; then
            echo "$name: --root / is this system: run without --root (as root) instead" >&2
            exit 2
        fi
        mkdir -p "$ROOT"
        NOT_RUN=$ROOT/commands-not-run.log
        # Staged: record what would change the system instead of doing it.
        system() { echo "$*" >>"$NOT_RUN"; echo "  not run (--root): $*"; }
    else
        if [ "$(id -u)" -ne 0 ]; then
            echo "$name: run as root (sudo $0), or stage with --root DIR" >&2
            exit 1
        fi
        system() { echo "  + $*"; "$@"; }
    fi
}
