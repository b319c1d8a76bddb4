#!/usr/bin/env bash
# Checkpoints, GraphDefs and MetaGraphDefs both ways with real TensorFlow 2.21, ONNX models in
# ONNX Runtime, event files in TensorBoard's loader (tests/tf_interop.py). Installs them into
# a virtualenv ($TF_VENV, default /tmp/tg-tf-venv) when missing, builds the examples and the CLI,
# runs the checks.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${TF_VENV:-/tmp/tg-tf-venv}"
if ! "$venv/bin/python" -c "import tensorflow, onnxruntime, tensorboard" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check tensorflow-cpu==2.21.0 onnxruntime tensorboard
fi
cargo build --release --example mnist_mlp --example mnist_cnn --example mnist_rnn --bin tensorgraph
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
# Graphs built here (GraphDefs and our outputs, for TF to run): loops and conditionals; a loop's
# gradient (two loops); training graphs (.meta and checkpoint) of an LSTM through a loop and of
# batch norm; a run-time slice's gradient (a Pad); a count over some axes (written as TF ops); a
# batch norm switched at run time (an If).
TG_INTEROP_OUT="$out" cargo test -q --test graph_def -- loops_and_conditionals_built_here a_loops_gradient \
    a_looped_rnn_training_graph a_batch_norm_training_graph a_run_time_slices_gradient \
    a_count_over_some_axes a_batch_norm_switched_at_run_time
TG_INTEROP_OUT="$out" cargo test -q --test onnx -- batch_norm_of_dense_layers_and_dropout \
    an_lstm_with_peepholes_and_a_cell_clip
"$venv/bin/python" tests/tf_interop.py --examples target/release/examples --cli target/release/tensorgraph --out "$out"
