#!/usr/bin/env bash
# API conformance: schemathesis (PyPI) against the real server's own OpenAPI
# document. Fails on any 5xx, any status the document does not list, and any
# response that does not match its schema. Bounded: a fixed seed and a
# small number of examples per operation, so it takes a few minutes.
#
# Usage: .ci/schemathesis.sh PATH_TO_MARKETER_SERVER [MAX_EXAMPLES]
set -euo pipefail
server_bin="$1"
examples="${2:-25}"
work="$(mktemp -d)"
port_file="$work/ports"
cleanup() {
    if [ -n "${server_pid:-}" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

email="conformance@example.com"
password="conformance-password-0001"
# Port 0 for both listeners; the server prints the addresses it bound.
# Thousands of requests a minute from one key: well above the plans' limits.
MARKETER_RATE_LIMITS=1000000,1000000,1000000 \
MARKETER_BOOTSTRAP_EMAIL="$email" MARKETER_BOOTSTRAP_PASSWORD="$password" MARKETER_LOG_LEVEL=warn \
    "$server_bin" serve --data-dir "$work/data" --listen 127.0.0.1:0 --agent-listen 127.0.0.1:0 \
    >"$port_file" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 1 100); do
    grep -q "marketer-server listening on" "$port_file" 2>/dev/null && break
    sleep 0.1
done
base="$(sed -n 's/^marketer-server listening on //p' "$port_file")"
if [ -z "$base" ]; then
    echo "the server did not start:" >&2
    cat "$work/server.log" >&2
    exit 1
fi
token="$(curl -sf "$base/api/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"email\":\"$email\",\"password\":\"$password\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"

json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
tenant="$(curl -sf "$base/api/v1/me" -H "authorization: Bearer $token" | json '["memberships"][0]["tenant_id"]')"
project="$(curl -sf "$base/api/v1/tenants/$tenant/projects" -H "authorization: Bearer $token" \
    -H 'content-type: application/json' -d '{"name":"Conformance"}' | json '["id"]')"
# Real identifiers for the path, so requests reach the handlers instead of
# stopping at 404 (random ids are tried too, by the generator's own cases).
cat >"$work/schemathesis.toml" <<TOML
[parameters]
"path.tenant_id" = "$tenant"
"path.project_id" = "$project"
TOML

status=0
python3 -m schemathesis.cli --config-file "$work/schemathesis.toml" run "$base/api/v1/openapi.json" \
    --checks not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance \
    --header "Authorization: Bearer $token" \
    --max-examples "$examples" --seed 20261201 --workers 1 \
    --request-timeout 30 \
    --exclude-path-regex '/events$' \
    --report junit --report-junit-path "$work/junit.xml" \
    || status=$?
if [ "$status" -ne 0 ]; then
    echo "server log (last lines):" >&2
    tail -n 40 "$work/server.log" >&2
fi
exit "$status"
