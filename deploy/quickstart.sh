#!/usr/bin/env bash
# bgpctl quick start for a fresh Debian 12 / Ubuntu 22.04+ machine, as root. Safe to repeat.
#
#   deploy/quickstart.sh demo   set up, bring up the lab, run a failover drill, print the report
#   deploy/quickstart.sh test   set up, then ruff, mypy --strict and the whole test suite
#
# Set-up = Debian packages (FRR, BIRD, nftables, iptables, libnetfilter-queue, prometheus for its
# promtool), a venv in .venv with bgpctl, the lab and the test tools installed in it (.[dev,lab]; the
# lab's NetfilterQueue is built with gcc). Nothing is installed twice; nothing outside the lab namespaces
# is touched, except that the services bird2 and prometheus start are stopped (quiet_service).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"

die() { echo "quickstart: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (the lab creates network namespaces and starts FRR)"

APT_PKGS=(frr bird2 nftables iptables libnetfilter-queue1 libnetfilter-queue-dev iproute2 iputils-ping tcpdump
          gcc python3-dev procps prometheus)

install_apt() {
  local missing=()
  for p in "${APT_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "quickstart: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  quiet_service bird
  quiet_service prometheus
}

# Packages that start a system service in the root namespace, which bgpctl does not use: bird2 (the lab
# runs its own BIRD per namespace: --edge bird / bird-no-addpath) and prometheus (installed for its
# promtool, which checks deploy/prometheus/; a Prometheus server would listen on :9090 and scrape).
# Stop and disable them (systemd, or sysvinit without it).
quiet_service() {
  local name=$1
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl disable --now "$name.service" >/dev/null 2>&1 || true
  elif [ -x "/etc/init.d/$name" ]; then
    "/etc/init.d/$name" stop >/dev/null 2>&1 || true
    update-rc.d "$name" disable >/dev/null 2>&1 || true
  fi
}

find_python() {
  for py in python3.11 python3; do
    if command -v "$py" >/dev/null && "$py" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      command -v "$py"; return
    fi
  done
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3.11 python3.11-venv python3.11-dev >/dev/null \
    || die "bgpctl needs Python 3.11 (ExaBGP 5); install python3.11 and re-run"
  command -v python3.11
}

install_venv() {
  local py
  py=$(find_python)
  if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    rm -rf "$VENV"
    "$py" -m venv "$VENV" || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3.11-venv >/dev/null; "$py" -m venv "$VENV"; }
  fi
  # re-install only when pyproject.toml changed since the last install
  local stamp="$VENV/.bgpctl-installed" sum
  sum=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$sum" ]; then
    "$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip >/dev/null
    "$VENV/bin/pip" install -q --disable-pip-version-check -e ".[dev,lab]"
    echo "$sum" > "$stamp"
  fi
}

cmd=${1:-}
case "$cmd" in
  demo|test) ;;
  *) die "usage: $0 demo|test" ;;
esac

install_apt
install_venv
export PATH="$VENV/bin:$PATH"

case "$cmd" in
  demo) exec bgpctl demo ;;
  test) exec "$ROOT/deploy/run-tests.sh" ;;
esac
