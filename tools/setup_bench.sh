#!/usr/bin/env bash
# Installs the benchmark-only venv, .venv-bench: Flower (flwr) and numpy, pinned by
# requirements/bench.txt, for bench/aggregation.py's comparison with Flower's aggregation.
# Kept apart from .venv so Flower's protobuf/grpc/... never enter ape's environment.
# Idempotent: skipped while requirements/bench.txt is unchanged (a stamp holds its hash).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=.venv-bench
STAMP=$VENV/.stamps/bench

want=$(sha256sum requirements/bench.txt | cut -c1-16)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  exit 0
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup_bench: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
echo "setup_bench: installing Flower and its pinned dependencies (requirements/bench.txt)"
# --no-deps: the file is the complete pinned set (see its header for the one certifi exception).
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps -r requirements/bench.txt
"$VENV/bin/python" -c "import flwr.server.strategy.aggregate, numpy; print('setup_bench: flwr', \
__import__('flwr').__version__, 'numpy', numpy.__version__)"
mkdir -p "$(dirname "$STAMP")"
echo "$want" > "$STAMP"
