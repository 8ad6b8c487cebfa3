#!/usr/bin/env bash
# Installs what the integration tests need, idempotently (fast when everything is present):
#   - everything `make demo` needs (scripts/install-demo-deps.sh): OpenSSH server + client and python3-venv (apt-get),
#     and .venv with the pinned Python packages of requirements-dev.txt (pip);
#   - Node.js + npm (Debian packages when absent) and tests/node's pinned npm packages (npm ci of its lockfile): the
#     TypeScript MCP SDK and the MCP Inspector;
#   - redis-server and haproxy (apt-get): the local fleet test (tests/test_fleet.py: a shared store, a balancer that
#     checks /ready);
#   - a local user of this checkout's own (`nx-t-` + 8 hex digits of its path's SHA-256, in .run/test-user) with a random
#     password (.run/test-user-password) for password-auth tests: checkouts on one machine never share it.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-demo-deps.sh

say() { printf '[deps] %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  echo "[deps] need root to run: $*" >&2; exit 1; fi; }

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  say "installing nodejs npm (apt-get)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq nodejs npm >/dev/null \
    || { echo "[deps] apt-get install nodejs npm failed: install them by hand" >&2; exit 1; }
fi

# The TypeScript MCP SDK, the client most MCP hosts use (tests/test_ts_client.py drives tests/node/mcp-client.mjs), and
# the MCP Inspector CLI that README.md's examples run (tests/test_readme.py).
command -v node >/dev/null && command -v npm >/dev/null \
  || { echo "[deps] node and npm are required for tests/node (install Node.js >= 20.19.5 with npm)" >&2; exit 1; }
# tests/node's engines: the MCP SDK needs 18, the OIDC mock provider (and its yargs) 20.19.5.
node -e 'const [a,b,c]=process.versions.node.split(".").map(Number); process.exit(a>20||(a==20&&(b>19||(b==19&&c>=5)))?0:1)' \
  || { echo "[deps] tests/node needs Node.js >= 20.19.5 (the OIDC mock provider's engines), found $(node --version)" >&2; exit 1; }
node_stamp=tests/node/node_modules/.package-lock.sha256
node_want=$(sha256sum tests/node/package-lock.json | cut -d' ' -f1)
if [ "$(cat "$node_stamp" 2>/dev/null)" != "$node_want" ]; then
  say "installing tests/node (npm ci, $(grep -m1 -o '"@modelcontextprotocol/sdk": "[^"]*"' tests/node/package.json))"
  (cd tests/node && npm ci --no-audit --no-fund --silent) \
    || { echo "[deps] npm ci in tests/node failed (is the npm registry reachable?)" >&2; exit 1; }
  echo "$node_want" > "$node_stamp"
fi

# The local fleet (tests/test_fleet.py): Redis as the shared session store, HAProxy as the balancer.
if ! command -v redis-server >/dev/null || ! { command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ]; }; then
  say "installing redis-server haproxy (apt-get)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq redis-server haproxy >/dev/null \
    || { echo "[deps] apt-get install redis-server haproxy failed: tests/test_fleet.py needs both (install them by hand)" >&2; exit 1; }
fi

mkdir -p .run && chmod 700 .run
user="nx-t-$(pwd -P | sha256sum | cut -c1-8)"
if ! id "$user" >/dev/null 2>&1; then
  say "creating local user $user (password auth tests of this checkout)"
  as_root useradd --no-create-home --shell /bin/sh "$user"
  rm -f .run/test-user-password
fi
if [ ! -s .run/test-user-password ] || [ "$(cat .run/test-user 2>/dev/null)" != "$user" ]; then
  (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' > .run/test-user-password)
  echo "$user:$(cat .run/test-user-password)" | as_root chpasswd
fi
echo "$user" > .run/test-user
as_root usermod -U "$user" 2>/dev/null || true
say "ready: $(/usr/sbin/sshd -V 2>&1 | head -1), $(.venv/bin/python --version), nx-27017 $(.venv/bin/pip show nx-27017 2>/dev/null | awk '/^Version/{print $2}'), node $(node --version)"
