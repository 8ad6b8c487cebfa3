#!/usr/bin/env bash
# Generates the dev stack's keys and secrets into docker/.secrets/ (git-ignored). Idempotent: existing keys and
# passwords stay; derived files (authorized_keys, known_hosts, the MongoDB URI) are rewritten from them every run.
set -euo pipefail
cd "$(dirname "$0")"
s=.secrets
mkdir -p "$s/client" "$s/bastion"
[ -f "$s/client/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C nexus-mcp-dev -f "$s/client/id_ed25519"
[ -f "$s/bastion/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C bastion -f "$s/bastion/ssh_host_ed25519_key"
cp "$s/client/id_ed25519.pub" "$s/bastion/authorized_keys_tunnel"
# The bastion is reached as `bastion:22` inside the compose network.
echo "bastion $(cut -d' ' -f1,2 "$s/bastion/ssh_host_ed25519_key.pub")" > "$s/known_hosts"
rand() { head -c 24 /dev/urandom | base64 | tr -d '/+='; }
[ -f "$s/mongo_root_password" ] || rand > "$s/mongo_root_password"
[ -f "$s/mongo_app_password" ] || rand > "$s/mongo_app_password"
# The replica set's internal authentication key (mongod --keyFile): 756 random bytes, base64 (1008 characters of
# the 1024 mongod accepts). Every member must hold the same key, so it is kept across runs.
[ -f "$s/mongo_keyfile" ] || head -c 756 /dev/urandom | base64 > "$s/mongo_keyfile"
# The URI exactly as mongosh on the bastion would use it: every member by the name the bastion resolves, the set's
# name, the app user's database. nexus-mcp uses it unchanged (tunnel.mode = "auto" sees several hosts).
printf 'mongodb://app:%s@mongo-0:27017,mongo-1:27017,mongo-2:27017/shop?replicaSet=rs0&authSource=shop\n' \
  "$(cat "$s/mongo_app_password")" > "$s/mongo_uri"
[ -f "$s/tokens" ] || printf 'dev:%s\n' "$(rand)" > "$s/tokens"
# Bind-mounted files keep their host owner and mode in the container. nexus-mcp runs as uid 65532 and mongod's
# entrypoint reads the passwords as uid 999, so these must be readable by others: dev-only, hence world-readable.
# The keyfile too: mongod refuses a group/world-readable keyfile, so the members' entrypoint copies it to a file
# owned by 999 with mode 0400 inside each container (see docker-compose.yml) rather than using the mount directly.
chmod 0644 "$s/client/id_ed25519" "$s/known_hosts" "$s/tokens" "$s/mongo_uri" \
  "$s/mongo_root_password" "$s/mongo_app_password" "$s/mongo_keyfile"
chmod 0600 "$s/bastion/ssh_host_ed25519_key"
echo "dev secrets in docker/.secrets; call /mcp with: Authorization: Bearer $(cut -d: -f2 "$s/tokens")"
