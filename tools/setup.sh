#!/usr/bin/env bash
# Installs everything fedledger needs into the repository, idempotently: a Python venv with
# pinned packages, the pinned npm packages (anvil, solc, OpenZeppelin), the solc wrapper that
# ape-solidity and py-solc-x call, and an `anvil` on the repo's PATH. Re-running is cheap:
# each step is skipped while the files it depends on are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-python3}
SOLC_VERSION=0.8.28
STAMPS=.venv/.stamps

stamp_ok() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
stamp_set() { mkdir -p "$STAMPS"; echo "$2" > "$STAMPS/$1"; }

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi

py_hash=$(cat requirements/constraints.txt pyproject.toml | sha256sum | cut -c1-16)
if ! stamp_ok python "$py_hash"; then
  echo "setup: installing Python packages (the pinned set in requirements/constraints.txt)"
  # The file is the complete resolved set, installed as it is (--no-deps): flwr 1.42.0 needs
  # packaging>=24 and eth-ape 0.8.51 declares packaging<24, so no resolver accepts both, while ape
  # runs (and its tests pass) on packaging 25.0. torch==2.13.0 resolves to the CPU build where pip
  # is configured with a local wheel of it.
  .venv/bin/pip install --quiet --disable-pip-version-check --no-deps -r requirements/constraints.txt
  .venv/bin/pip install --quiet --disable-pip-version-check --no-deps -e ".[dev,flower]"
  # Anything missing from the pinned set shows up here; the one declared mismatch above is expected.
  broken=$(.venv/bin/pip check --disable-pip-version-check | grep -v -e '^eth-ape .* packaging' -e '^No broken' || true)
  if [ -n "$broken" ]; then
    echo "setup: requirements/constraints.txt is not a complete, consistent set:" >&2
    echo "$broken" >&2
    exit 1
  fi
  stamp_set python "$py_hash"
fi

npm_hash=$(cat package.json package-lock.json | sha256sum | cut -c1-16)
if ! stamp_ok npm "$npm_hash" || [ ! -d node_modules ]; then
  echo "setup: installing npm packages (pinned by package-lock.json)"
  # `npm ci` trips over the platform binaries anvil lists as optional; install honours the lock.
  npm install --no-audit --no-fund --loglevel=error
  stamp_set npm "$npm_hash"
fi

# The dashboard's browser tests drive Debian's Chromium through its chromedriver (a test tool's
# own browser download does not work offline).
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing chromium and chromium-driver (apt) for the dashboard's browser tests"
    apt_install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null; }
    apt_install || { apt-get update -q >/dev/null && apt_install; }
  else
    echo "setup: warning: chromium and chromedriver are missing; the dashboard's browser tests need them" \
      "(as root: apt-get install chromium chromium-driver)" >&2
  fi
fi

# ape-solidity and py-solc-x look for executables named solc-v<version> in SOLCX_BINARY_PATH.
mkdir -p .solcx
cat > ".solcx/solc-v$SOLC_VERSION" <<WRAPPER
#!/bin/sh
exec node "$ROOT/tools/solc-standard-json.js" "\$@"
WRAPPER
chmod +x ".solcx/solc-v$SOLC_VERSION"

# The npm `anvil` is a node wrapper; link the real binary so its PID is the node's PID.
mkdir -p .bin
ln -sf "$ROOT/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil" .bin/anvil
echo "setup: ready ($(.bin/anvil --version | head -1))"
