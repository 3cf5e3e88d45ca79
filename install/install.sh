#!/usr/bin/env bash
# Install or upgrade the charge point controller on Raspberry Pi OS (bookworm): a system user,
# a venv in /opt/chargepoint, the config in /etc/chargepoint, state in /var/lib/chargepoint and
# the systemd service.  Re-running it upgrades and keeps config and state.  See docs/install.md.
#
#   sudo install/install.sh                      install or upgrade this machine
#   install/install.sh --root DIR [--skip-pip]   stage into DIR (tests, packaging): no
#                                                useradd/chown/systemctl, written to
#                                                DIR/commands-not-run.log instead
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=install/common.sh
. "$SRC/install/common.sh"
ROOT=${DESTDIR:-}
PYTHON=python3
SKIP_PIP=0
ENABLE=1

usage() {
    cat <<USAGE
usage: $0 [--root DIR] [--skip-pip] [--python PYTHON] [--no-enable]

  --root DIR      stage everything under DIR instead of / (also: DESTDIR=DIR).  Commands that
                  change the system (useradd, chown, systemctl) are not run but written to
                  DIR/commands-not-run.log.  No root rights needed.
  --skip-pip      create the venv without pip and do not install the package into it
                  (tests: no network).  Without it pip installs this checkout and its
                  dependencies (network, or a local index through pip's own settings).
  --python PATH   interpreter that creates the venv (default python3, 3.11 or newer)
  --no-enable     install the unit but do not enable it at boot
USAGE
}

while [ $# -gt 0 ]; do
    case "$1" in
        --root) ROOT=${2:?--root needs a directory}; shift 2 ;;
        --root=*) ROOT=${1#*=}; shift ;;
        --skip-pip) SKIP_PIP=1; shift ;;
        --python) PYTHON=${2:?--python needs a path}; shift 2 ;;
        --no-enable) ENABLE=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done

prepare_root install.sh

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "install.sh: $PYTHON is older than Python 3.11 (Raspberry Pi OS bookworm has 3.11)" >&2
    exit 1
}

if [ "$SKIP_PIP" = 0 ] && ! "$PYTHON" -c 'import ensurepip' 2>/dev/null; then
    echo "install.sh: $PYTHON cannot create a venv with pip: sudo apt install python3-venv" >&2
    exit 1
fi

UPGRADE=0
[ -e "$ROOT$UNIT_DIR/$UNIT" ] && UPGRADE=1
VERSION=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$SRC/pyproject.toml" | head -n 1)
if [ "$UPGRADE" = 1 ]; then
    say "upgrading to $VERSION from $SRC (config and state are kept)"
else
    say "installing $VERSION from $SRC into ${ROOT:-/}"
fi

# --- the service user: no login, no home of its own, GPIO and serial access through groups
if [ -n "$ROOT" ]; then
    system useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
        --shell /usr/sbin/nologin --groups "$(IFS=,; echo "${SERVICE_GROUPS[*]}")" "$SERVICE_USER"
else
    for group in "${SERVICE_GROUPS[@]}"; do
        # Raspberry Pi OS has both; elsewhere gpio may be missing (then a udev rule must give
        # /dev/gpiochip* to it: docs/install.md, "GPIO access on a system other than Raspberry
        # Pi OS").
        getent group "$group" >/dev/null || system groupadd --system "$group"
    done
    if id "$SERVICE_USER" >/dev/null 2>&1; then
        system usermod --append --groups "$(IFS=,; echo "${SERVICE_GROUPS[*]}")" "$SERVICE_USER"
    else
        system useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
            --shell /usr/sbin/nologin --groups "$(IFS=,; echo "${SERVICE_GROUPS[*]}")" \
            "$SERVICE_USER"
    fi
fi

# --- directories: config readable by the service only, state writable by it only
install -d -m 0755 "$ROOT$PREFIX" "$ROOT$PREFIX/share" "$ROOT$UNIT_DIR"
install -d -m 0750 "$ROOT$CONF_DIR" "$ROOT$STATE_DIR"
system chown "root:$SERVICE_USER" "$CONF_DIR"
# -R: a state file root touched (a "sudo chargepoint config set") is the service's again after
# an upgrade; the daemon refuses files it cannot open rather than set them aside.
system chown -R "$SERVICE_USER:$SERVICE_USER" "$STATE_DIR"

# --- the venv (recreated when its interpreter is gone, e.g. after a Python upgrade)
if [ -e "$ROOT$VENV" ] && ! "$ROOT$VENV/bin/python" -c '' 2>/dev/null; then
    say "the venv's interpreter is gone: recreating $VENV"
    rm -rf "$ROOT$VENV"
fi
if [ ! -e "$ROOT$VENV/bin/python" ]; then
    if [ "$SKIP_PIP" = 1 ]; then
        "$PYTHON" -m venv --without-pip "$ROOT$VENV"
    else
        "$PYTHON" -m venv "$ROOT$VENV"
    fi
fi
if [ "$SKIP_PIP" = 1 ]; then
    say "--skip-pip: the package is not installed into $VENV"
else
    "$ROOT$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$ROOT$VENV/bin/python" -m pip install --quiet --upgrade "$SRC"
fi
echo "$VERSION" >"$ROOT$PREFIX/VERSION"
chmod 0644 "$ROOT$PREFIX/VERSION"

# --- docs and the example config (refreshed on every upgrade, for comparison)
install -d -m 0755 "$ROOT$PREFIX/docs"
install -m 0644 "$SRC"/docs/*.md "$ROOT$PREFIX/docs/"
install -m 0644 "$SRC/config/pi.toml" "$ROOT$PREFIX/share/chargepoint.toml.example"

# --- the configuration: never overwritten
if [ -e "$ROOT$CONF" ]; then
    say "keeping $CONF (the new example is $PREFIX/share/chargepoint.toml.example)"
else
    install -m 0640 "$SRC/config/pi.toml" "$ROOT$CONF"
    system chown "root:$SERVICE_USER" "$CONF"
    say "wrote $CONF from config/pi.toml: edit id, csms_url and the pin map"
fi

# --- the service
install -m 0644 "$SRC/systemd/$UNIT" "$ROOT$UNIT_DIR/$UNIT"
system systemctl daemon-reload
if [ "$ENABLE" = 1 ]; then
    system systemctl enable "$UNIT"
fi
if [ "$UPGRADE" = 1 ]; then
    # Restarts only a running service: outputs go safe on SIGTERM, the new version starts.
    system systemctl try-restart "$UNIT"
    say "upgraded"
else
    say "installed.  Next:"
    say "  1. edit $CONF"
    say "  2. $VENV/bin/chargepoint doctor --config $CONF"
    say "  3. systemctl start $UNIT; journalctl -u $SERVICE -f"
fi
