#!/usr/bin/env bash
# Benchmarks, side by side with the tools a user would otherwise pick. The anchors (MLflow, ...) are
# installed into their own environment, .venv-bench, together with tidal, so they never leak into the
# project's own environment.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=.venv-bench
if [ ! -x "$BENCH/bin/python" ]; then
  python3 -m venv "$BENCH"
  "$BENCH/bin/python" -m pip install -q --upgrade pip
fi
"$BENCH/bin/python" -m pip install -q -e . -r bench/requirements.txt
export PATH="$PWD/$BENCH/bin:$PATH"
"$BENCH/bin/python" bench/tracking.py "$@"
