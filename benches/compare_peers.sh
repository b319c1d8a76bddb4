#!/usr/bin/env bash
# One command for the side-by-side comparison on a fresh machine: installs TensorFlow 2.21 (and
# tf-keras, which TF1's layers need) into a virtualenv ($TF_VENV, default /tmp/tg-tf-venv) when
# missing, builds the examples, and runs benches/compare_peers.py with its arguments (or, given
# `latency` first, benches/compare_latency.py with the rest).
#
#     bash benches/compare_peers.sh rnn --reps 3
#     bash benches/compare_peers.sh cnn --opt adam
#     bash benches/compare_peers.sh latency --rounds 3
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${TF_VENV:-/tmp/tg-tf-venv}"
if ! TF_USE_LEGACY_KERAS=1 "$venv/bin/python" -c "import tensorflow, tf_keras" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check tensorflow-cpu==2.21.0 "tf-keras~=2.21.0"
fi
if [ "${1:-}" = latency ]; then
    shift
    exec python3 benches/compare_latency.py "$@" --python "$venv/bin/python"
fi
cargo build --release --examples
python3 benches/compare_peers.py "$@" --python "$venv/bin/python"
