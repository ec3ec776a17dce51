#!/usr/bin/env bash
# Tessera's OAuth 2 endpoints (metadata, introspection, revocation) against a client library
# nobody here wrote: Authlib, from PyPI, in a virtual environment under target/ci-tools/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

AUTHLIB_VERSION=1.9.10
venv=target/ci-tools/oauth-venv
if ! "$venv/bin/python" -c "import authlib; assert authlib.__version__ == '$AUTHLIB_VERSION'" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "authlib==$AUTHLIB_VERSION" requests
fi

cargo build --quiet --bin tessera
tessera="$root/target/debug/tessera"
work=$(mktemp -d)
server_pid=
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

cd "$work"
"$tessera" serve --listen 127.0.0.1:0 --bootstrap-token admin.token >server.log 2>&1 &
server_pid=$!
base=
for _ in $(seq 1 100); do
  base=$(grep -oE 'http://127\.0\.0\.1:[0-9]+' server.log | head -n 1 || true)
  [[ -n "$base" && -s admin.token ]] && break
  kill -0 "$server_pid" 2>/dev/null || { cat server.log; echo "tessera serve exited" >&2; exit 1; }
  sleep 0.1
done
[[ -n "$base" ]] || { cat server.log; echo "tessera serve did not start" >&2; exit 1; }
"$root/$venv/bin/python" "$root/.ci/oauth_client.py" "$base" "$(cat admin.token)"
