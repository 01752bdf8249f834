#!/usr/bin/env bash
# Benchmarks, side by side with the tools a user would otherwise pick. The anchors (MLflow, Evidently,
# ...) are installed into their own environment, .venv-bench, together with tidal, so they never leak
# into the project's own environment. Runs every bench/*.py, or the ones named: bash bench/run.sh tracking
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=.venv-bench
if [ ! -x "$BENCH/bin/python" ]; then
  python3 -m venv "$BENCH"
  "$BENCH/bin/python" -m pip install -q --upgrade pip
fi
"$BENCH/bin/python" -m pip install -q -e . -r bench/requirements.txt
export PATH="$PWD/$BENCH/bin:$PATH"
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  names=()
  for f in bench/*.py; do b=$(basename "$f" .py); [[ $b == _* ]] || names+=("$b"); done
fi
status=0
for name in "${names[@]}"; do
  echo "== bench/$name.py"
  "$BENCH/bin/python" "bench/$name.py" || status=1
done
exit $status
