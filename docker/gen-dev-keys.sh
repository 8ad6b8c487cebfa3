#!/usr/bin/env bash
# Generates the dev stack's keys and secrets into docker/.secrets/ (git-ignored). Idempotent: existing files stay.
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
printf 'mongodb://app:%s@mongo:27017/shop?authSource=shop\n' "$(cat "$s/mongo_app_password")" > "$s/mongo_uri"
[ -f "$s/tokens" ] || printf 'dev:%s\n' "$(rand)" > "$s/tokens"
# nexus-mcp runs as uid 65532 in its image and must read these bind mounts: dev-only, hence world-readable.
chmod 0644 "$s/client/id_ed25519" "$s/known_hosts" "$s/tokens" "$s/mongo_uri"
chmod 0600 "$s/bastion/ssh_host_ed25519_key"
echo "dev secrets in docker/.secrets; call /mcp with: Authorization: Bearer $(cut -d: -f2 "$s/tokens")"
