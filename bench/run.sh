#!/usr/bin/env bash
# One command for the side-by-side benchmark (docs/benchmarks.md): builds our release binary
# and the standalone fake DomainTools API, installs the Python reference into a throwaway venv
# under /tmp and wrk if missing, then runs bench/bench.py. Loopback only.
#
#   bench/run.sh [--duration SECONDS] [--threads N]
#
# DTBENCH_VENV overrides the venv location (default /tmp/dtbench-venv; reused when present).
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${DTBENCH_VENV:-/tmp/dtbench-venv}"

echo "== build (release)"
cargo build --release --locked -p misp-domaintools --bin misp-domaintools
cargo build --release --locked -p domaintools-fake --example fake_api

if [ ! -x "$venv/bin/misp-modules" ]; then
  echo "== Python reference into $venv"
  python3 -m venv "$venv"
  # Pinned: the versions docs/benchmarks.md compares against.
  "$venv/bin/pip" install --quiet "misp-modules==3.1.1" "domaintools-misp==0.2.8"
fi

if ! command -v wrk >/dev/null; then
  echo "== wrk (Debian package)"
  apt-get update
  apt-get install -y wrk
fi

if ! [ -x /usr/sbin/nginx ]; then
  echo "== nginx (Debian package nginx-light), the static-file anchor"
  apt-get update
  apt-get install -y nginx-light
  # Only the binary is used, started by bench.py on loopback; not the system service.
  systemctl disable --now nginx 2>/dev/null || service nginx stop 2>/dev/null || true
fi

echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
exec python3 bench/bench.py \
  --ours target/release/misp-domaintools \
  --fake target/release/examples/fake_api \
  --venv "$venv" "$@"
