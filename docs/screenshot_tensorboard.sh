#!/usr/bin/env bash
# Reproduces docs/tensorboard-*.png: trains the MLP one epoch with --logdir, serves it with the real
# TensorBoard on localhost and screenshots it with headless Chromium.
# Needs: pip install tensorboard (e.g. into /tmp/peers-venv), apt-get install chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
TB=${TB:-/tmp/peers-venv/bin/tensorboard}
rm -rf runs/tb-mlp
cargo run --release --example mnist_mlp -- --epochs 1 --seed 1 --logdir runs/tb-mlp
"$TB" --logdir runs/tb-mlp --host 127.0.0.1 --port 6006 >/dev/null 2>&1 &
tb=$!
trap 'kill $tb' EXIT
sleep 12
shot() {
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$(mktemp -d)" --window-size=1400,900 \
    --virtual-time-budget=20000 --screenshot="$2" "http://127.0.0.1:6006/#$1"
}
shot "graphs&run=." docs/tensorboard-graph.png
shot scalars docs/tensorboard-scalars.png
