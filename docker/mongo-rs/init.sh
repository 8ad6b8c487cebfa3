#!/usr/bin/env bash
# The `mongo-rs-init` one-shot: runs initiate.js against the first member until it succeeds, for at most
# RS_INIT_TIMEOUT seconds. Retrying covers the first member's first start, when the image's entrypoint runs the
# init scripts on a temporary mongod that listens on 127.0.0.1 only, then restarts it with --replSet/--keyFile.
set -euo pipefail
first=${RS_MEMBERS%%,*}
deadline=$((SECONDS + ${RS_INIT_TIMEOUT:-180}))
until mongosh --quiet "mongodb://$first/admin?directConnection=true" --file /mongo-rs/initiate.js; do
  if ((SECONDS >= deadline)); then
    echo "replica set $RS_NAME: not ready within ${RS_INIT_TIMEOUT:-180} s" >&2
    exit 1
  fi
  sleep 2
done
