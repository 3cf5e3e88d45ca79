#!/usr/bin/env bash
# Install or upgrade the charge point controller on Raspberry Pi OS (bookworm): a system user,
# the release in /opt/chargepoint/releases/<version> (`current` names it), the config in
# /etc/chargepoint, state in /var/lib/chargepoint and the systemd service.  Re-running it
# upgrades (an install of the old layout, /opt/chargepoint/venv, too) and keeps config and
# state.  See docs/install.md.
#
#   sudo install/install.sh                      build a release of this checkout (online)
#                                                and install it, or upgrade to it
#   sudo install/install.sh --bundle FILE        install a release bundle (offline)
#   install/install.sh --root DIR [...]          stage into DIR (tests, packaging): no
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
BUNDLE=
COMPILE=()

usage() {
    cat <<USAGE
usage: $0 [--root DIR] [--bundle FILE | --skip-pip] [--python PYTHON] [--no-enable]
       [--no-compile]

  --root DIR      stage everything under DIR instead of / (also: DESTDIR=DIR).  Commands that
                  change the system (useradd, chown, systemctl) are not run but written to
                  DIR/commands-not-run.log.  No root rights needed.
  --bundle FILE   install this release bundle (chargepoint release build; no network).
                  Without it a bundle of this checkout is built first (network for pip, or
                  a local index through pip's own settings).
  --skip-pip      install no release (tests: no network, no bundle): directories,
                  configuration, launcher and unit only
  --python PATH   interpreter that creates the venv (default python3, 3.11 or newer)
  --no-enable     install the unit but do not enable it at boot
  --no-compile    do not compile the release's bytecode at install (tests: faster; the
                  service starts slower, it cannot write bytecode under /opt)
USAGE
}

while [ $# -gt 0 ]; do
    case "$1" in
        --root) ROOT=${2:?--root needs a directory}; shift 2 ;;
        --root=*) ROOT=${1#*=}; shift ;;
        --skip-pip) SKIP_PIP=1; shift ;;
        --bundle) BUNDLE=$(realpath "${2:?--bundle needs a file}"); shift 2 ;;
        --bundle=*) BUNDLE=$(realpath "${1#*=}"); shift ;;
        --python) PYTHON=${2:?--python needs a path}; shift 2 ;;
        --no-enable) ENABLE=0; shift ;;
        --no-compile) COMPILE=(--no-compile); shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done

prepare_root install.sh

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "install.sh: $PYTHON is older than Python 3.11 (Raspberry Pi OS bookworm has 3.11)" >&2
    exit 1
}

if [ -n "$BUNDLE" ] && [ ! -f "$BUNDLE" ]; then
    echo "install.sh: no bundle at $BUNDLE" >&2
    exit 2
fi
if [ "$SKIP_PIP" = 0 ] && [ -z "$BUNDLE" ] && ! "$PYTHON" -c 'import ensurepip' 2>/dev/null; then
    echo "install.sh: $PYTHON cannot create a venv with pip: sudo apt install python3-venv" >&2
    exit 1
fi

UPGRADE=0
[ -e "$ROOT$UNIT_DIR/$UNIT" ] && UPGRADE=1
VERSION=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$SRC/pyproject.toml" | head -n 1)
FROM=${BUNDLE:-$SRC}
if [ "$UPGRADE" = 1 ]; then
    say "upgrading from $FROM (config and state are kept)"
else
    say "installing from $FROM into ${ROOT:-/}"
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

# --- the release: a bundle (given, or built from this checkout), installed by the product's
# own installer into releases/<version> and made current; the one before is kept as previous.
install -d -m 0755 "$ROOT$RELEASES"
install -m 0644 "$SRC/firmware/release/launcher.py" "$ROOT$RELEASES/launcher.py"
if [ "$SKIP_PIP" = 1 ]; then
    say "--skip-pip: no release is installed into $RELEASES"
else
    WORK=$(mktemp -d)
    trap 'rm -rf "$WORK"' EXIT
    if [ -z "$BUNDLE" ]; then
        say "building the release bundle of $SRC (pip: network or your local index)"
        "$PYTHON" -m venv "$WORK/build"
        "$WORK/build/bin/python" -m pip install --quiet packaging
        PYTHONPATH="$SRC" "$WORK/build/bin/python" -m firmware release build --target host \
            --source "$SRC" --out "$WORK" >/dev/null
        BUNDLE=$(ls "$WORK"/*.tar)
    fi
    # The installer runs from the bundle's own wheels (pure Python, importable as zip files).
    mkdir "$WORK/boot"
    if ! tar -xf "$BUNDLE" -C "$WORK/boot" --wildcards 'wheels/pi_chargepoint-*.whl' \
            'wheels/packaging-*.whl' 2>"$WORK/tar.log"; then
        echo "install.sh: $BUNDLE is not a whole release bundle ($(head -n 1 "$WORK/tar.log"))" >&2
        exit 1
    fi
    VERSION=$("$PYTHON" -I -c 'import sys; sys.path[:0] = sys.argv[1:3]
from firmware.release.__main__ import main
sys.exit(main(sys.argv[3:]))' "$WORK"/boot/wheels/pi_chargepoint-*.whl \
        "$WORK"/boot/wheels/packaging-*.whl install --releases "$ROOT$RELEASES" \
        "${COMPILE[@]}" "$BUNDLE")
    say "release $VERSION installed: $CURRENT -> $VERSION"
fi
# The service installs updates into releases/ and switches current: it owns them.
system chown -R "$SERVICE_USER:$SERVICE_USER" "$RELEASES"
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
fi
# The layout before releases goes last: a running old daemon imports from its venv until the
# try-restart above has stopped it.
if [ "$SKIP_PIP" = 0 ] && [ -e "$ROOT$OLD_VENV" ]; then
    rm -rf "$ROOT$OLD_VENV"
    say "removed $OLD_VENV (the layout before releases)"
fi
if [ "$UPGRADE" = 0 ]; then
    say "installed.  Next:"
    say "  1. edit $CONF"
    say "  2. $CURRENT/bin/chargepoint doctor --config $CONF"
    say "  3. systemctl start $UNIT; journalctl -u $SERVICE -f"
fi
