#!/usr/bin/env bash
# Benchmarks, side by side with the tools a user would otherwise pick. The anchors (MLflow, Evidently,
# ...) are installed into their own environment, .venv-bench, together with tidal, so they never leak
# into the project's own environment. Runs every bench/*.py but corpus.py (`make corpus`, in .venv, with the corpus
# packages), or the ones named: bash bench/run.sh tracking
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=.venv-bench
if [ ! -x "$BENCH/bin/python" ]; then
  python3 -m venv "$BENCH"
  "$BENCH/bin/python" -m pip install -q --upgrade pip
fi
# torch as the Makefile pins it (bench/images.py trains and serves a CNN; the same torch as the project's tests)
"$BENCH/bin/python" -m pip install -q torch==2.13.0
# postgres: bench/ingest.py's PostgreSQL cases (TIDAL_BENCH_POSTGRES_URL); stream: the broker's own client; search, ray: bench/scale.py;
# onnx: bench/serve.py's ONNX runtime cells (deploy.runtime: onnx)
"$BENCH/bin/python" -m pip install -q -e ".[xgboost,lightgbm,torch,images,postgres,stream,search,ray,onnx]" -r bench/requirements.txt
# BentoML (serve.py's third anchor) clashes with MLflow's pins: it gets an environment of its own, with the
# same scikit-learn, so that the model file written by the bench environment loads there.
BENTO=.venv-bentoml
SKLEARN=$("$BENCH/bin/python" -c 'import sklearn; print(sklearn.__version__)')
if [ ! -x "$BENTO/bin/bentoml" ] || ! "$BENTO/bin/python" -c "import sklearn, sys; sys.exit(sklearn.__version__ != '$SKLEARN')"; then
  python3 -m venv "$BENTO"
  "$BENTO/bin/python" -m pip install -q --upgrade pip
  "$BENTO/bin/python" -m pip install -q -r bench/requirements-bentoml.txt "scikit-learn==$SKLEARN"
fi
export TIDAL_BENCH_BENTOML="$PWD/$BENTO/bin/bentoml"
export PATH="$PWD/$BENCH/bin:$PATH"
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  names=()
  for f in bench/*.py; do b=$(basename "$f" .py); [[ $b == _* || $b == corpus ]] || names+=("$b"); done
fi
status=0
for name in "${names[@]}"; do
  echo "== bench/$name.py"
  "$BENCH/bin/python" "bench/$name.py" || status=1
done
exit $status
