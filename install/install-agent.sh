#!/usr/bin/env bash
# Installs the Marketer edge agent as a systemd service on Linux.
#
#   cargo build --release -p marketer-edge-agent
#   sudo install/install-agent.sh
#   sudo -u marketer-agent MARKETER_AGENT_HOME=/var/lib/marketer-agent \
#        marketer-agent enroll --server https://HOST:8443 --token TOKEN
#   sudo systemctl enable --now marketer-agent
#
# Options:
#   --binary PATH   the marketer-agent binary (default: target/release/marketer-agent)
#   --destdir DIR   stage the files under DIR instead of / (for packaging; no
#                   user is created and systemd is not touched)
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
binary="$repo/target/release/marketer-agent"
destdir=""

while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary="$2"; shift 2 ;;
        --destdir) destdir="$2"; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
done

if [ ! -x "$binary" ]; then
    echo "no marketer-agent binary at $binary: run 'cargo build --release -p marketer-edge-agent' or pass --binary" >&2
    exit 1
fi
if [ -z "$destdir" ] && [ "$(id -u)" -ne 0 ]; then
    echo "run as root (or pass --destdir to stage the files)" >&2
    exit 1
fi

install -D -m 0755 "$binary" "$destdir/usr/local/bin/marketer-agent"
install -D -m 0644 "$repo/deploy/systemd/marketer-agent.service" "$destdir/etc/systemd/system/marketer-agent.service"
install -d -m 0755 "$destdir/etc/marketer-agent"
if [ ! -e "$destdir/etc/marketer-agent/environment" ]; then
    install -m 0600 "$repo/deploy/config/agent-environment.example" "$destdir/etc/marketer-agent/environment"
fi

if [ -z "$destdir" ]; then
    if ! id marketer-agent >/dev/null 2>&1; then
        useradd --system --home-dir /var/lib/marketer-agent --shell /usr/sbin/nologin marketer-agent
    fi
    install -d -m 0700 -o marketer-agent -g marketer-agent /var/lib/marketer-agent
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
        systemctl daemon-reload
    fi
fi

cat <<MSG
Installed marketer-agent $("$destdir/usr/local/bin/marketer-agent" --version | awk '{print $2}').
Next:
  1. enroll with the token from the control plane (Agents > Add an agent, or the API):
     sudo -u marketer-agent MARKETER_AGENT_HOME=/var/lib/marketer-agent marketer-agent enroll --server https://HOST:8443 --token TOKEN
  2. proxy or Ollama settings, if any: /etc/marketer-agent/environment
  3. systemctl enable --now marketer-agent
  4. sudo -u marketer-agent MARKETER_AGENT_HOME=/var/lib/marketer-agent marketer-agent doctor
MSG
