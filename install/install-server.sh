#!/usr/bin/env bash
# Installs the Marketer control plane as a systemd service on Linux.
#
#   cargo build --release -p marketer-control-plane
#   sudo install/install-server.sh            # then: systemctl enable --now marketer-server
#
# Options:
#   --binary PATH   the marketer-server binary (default: target/release/marketer-server)
#   --destdir DIR   stage the files under DIR instead of / (for packaging; no
#                   user is created and systemd is not touched)
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
binary="$repo/target/release/marketer-server"
destdir=""

while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary="$2"; shift 2 ;;
        --destdir) destdir="$2"; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
done

if [ ! -x "$binary" ]; then
    echo "no marketer-server binary at $binary: run 'cargo build --release -p marketer-control-plane' or pass --binary" >&2
    exit 1
fi
if [ -z "$destdir" ] && [ "$(id -u)" -ne 0 ]; then
    echo "run as root (or pass --destdir to stage the files)" >&2
    exit 1
fi

install -D -m 0755 "$binary" "$destdir/usr/local/bin/marketer-server"
install -D -m 0644 "$repo/deploy/systemd/marketer-server.service" "$destdir/etc/systemd/system/marketer-server.service"
install -d -m 0755 "$destdir/etc/marketer"
# Never overwrite an operator's configuration or secrets.
if [ ! -e "$destdir/etc/marketer/marketer.toml" ]; then
    install -m 0644 "$repo/deploy/config/marketer.example.toml" "$destdir/etc/marketer/marketer.toml"
fi
if [ ! -e "$destdir/etc/marketer/environment" ]; then
    install -m 0600 "$repo/deploy/config/environment.example" "$destdir/etc/marketer/environment"
fi

if [ -z "$destdir" ]; then
    if ! id marketer >/dev/null 2>&1; then
        useradd --system --home-dir /var/lib/marketer --shell /usr/sbin/nologin marketer
    fi
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
        systemctl daemon-reload
    fi
fi

cat <<MSG
Installed marketer-server $("$destdir/usr/local/bin/marketer-server" --version | awk '{print $2}').
Next:
  1. edit /etc/marketer/marketer.toml, and /etc/marketer/environment for secrets
     (set MARKETER_BOOTSTRAP_EMAIL and MARKETER_BOOTSTRAP_PASSWORD for the first owner)
  2. systemctl enable --now marketer-server
  3. journalctl -u marketer-server -f
MSG
