#!/usr/bin/env bash
# Installs what the integration tests and the demo need, idempotently (fast when everything is present):
#   - OpenSSH server + client (sshd, ssh-keygen, ssh-agent, ssh-add) from Debian packages;
#   - .venv with the pinned Python packages of requirements-dev.txt (nx-27017, mcp, pymongo, pytest);
#   - a local user `nexus-tunnel-test` with a random password (in .run/test-user-password) for password-auth tests.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[deps] %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  echo "[deps] need root to run: $*" >&2; exit 1; fi; }

missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh-keygen >/dev/null && command -v ssh-agent >/dev/null || missing+=(openssh-client)
command -v python3 >/dev/null || missing+=(python3 python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} (apt)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null \
    || { echo "[deps] apt-get install ${missing[*]} failed: install them by hand" >&2; exit 1; }
fi
as_root mkdir -p /run/sshd

stamp=.venv/.requirements.sha256
want=$(sha256sum requirements-dev.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "creating .venv with requirements-dev.txt"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
  echo "$want" > "$stamp"
fi

mkdir -p .run && chmod 700 .run
user=nexus-tunnel-test
if ! id "$user" >/dev/null 2>&1; then
  say "creating local user $user (password auth tests)"
  as_root useradd --no-create-home --shell /bin/sh "$user"
  rm -f .run/test-user-password
fi
if [ ! -s .run/test-user-password ]; then
  (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' > .run/test-user-password)
fi
# The user is shared by every checkout on this machine: (re)set its password to this checkout's every time.
echo "$user:$(cat .run/test-user-password)" | as_root chpasswd
as_root usermod -U "$user" 2>/dev/null || true
say "ready: $(/usr/sbin/sshd -V 2>&1 | head -1), $(.venv/bin/python --version), nx-27017 $(.venv/bin/pip show nx-27017 2>/dev/null | awk '/^Version/{print $2}')"
