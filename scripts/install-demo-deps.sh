#!/usr/bin/env bash
# Installs what `make demo` needs, and nothing else, idempotently (fast when everything is present):
#   - OpenSSH server + client (sshd for the local bastion, ssh-keygen for its keys) and python3 with venv, from
#     Debian packages (apt-get, as root or through sudo) when missing;
#   - .venv with the pinned Python packages of requirements-dev.txt (nx-27017, pymongo, mcp, …) through pip.
# scripts/install-test-deps.sh runs this first, then adds what only the tests need.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[deps] %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  echo "[deps] need root to run: $*" >&2; exit 1; fi; }

missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh-keygen >/dev/null && command -v ssh-agent >/dev/null || missing+=(openssh-client)
if ! command -v python3 >/dev/null; then
  missing+=(python3 python3-venv)
elif ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  missing+=(python3-venv)
fi
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} (apt-get)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null \
    || { echo "[deps] apt-get install ${missing[*]} failed: install them by hand" >&2; exit 1; }
fi
as_root mkdir -p /run/sshd

stamp=.venv/.requirements.sha256
want=$(sha256sum requirements-dev.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "creating .venv with requirements-dev.txt (pip)"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
  echo "$want" > "$stamp"
fi
