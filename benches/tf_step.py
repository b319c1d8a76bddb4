"""TensorFlow's training step for the scaling sweep (benches/scaling.py): the slides' MLP (SGD
0.01) and CNN (SGD 0.01), and the TF1 LSTM tutorial (BasicLSTMCell(128) over 28 rows, Adam
0.001), built in tf.compat.v1 graph mode as ../shared/peers builds them, at any batch size and
intra-op thread count, timed on real MNIST. Prints one RESULT line: the median ms per step.

usage: python benches/tf_step.py --model {mlp|cnn|rnn} --batch 100 --threads 2 [--warmup 5] [--steps 50]
"""
import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
import warnings

warnings.filterwarnings("ignore")
import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "peers"))
import common  # noqa: E402  (the peers' MNIST reader and batching)

ap = argparse.ArgumentParser()
ap.add_argument("--model", choices=["mlp", "cnn", "rnn"], required=True)
ap.add_argument("--batch", type=int, required=True)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--warmup", type=int, default=5)
ap.add_argument("--steps", type=int, default=50)
args = ap.parse_args()

v1 = tf.compat.v1
v1.disable_eager_execution()
v1.set_random_seed(42)
X = v1.placeholder(tf.float32, (None, 784), name="X")
y = v1.placeholder(tf.int32, (None,), name="y")
dense = v1.layers.dense
if args.model == "mlp":
    logits = dense(dense(dense(X, 300, tf.nn.relu), 100, tf.nn.relu), 10)
elif args.model == "cnn":
    c1 = v1.layers.conv2d(tf.reshape(X, [-1, 28, 28, 1]), 32, 3, 1, "SAME", activation=tf.nn.relu)
    c2 = v1.layers.conv2d(c1, 64, 3, 2, "SAME", activation=tf.nn.relu)
    p3 = tf.nn.max_pool(c2, [1, 2, 2, 1], [1, 2, 2, 1], "VALID")
    logits = dense(dense(tf.reshape(p3, [-1, 64 * 7 * 7]), 64, tf.nn.relu), 10)
else:
    outputs, _ = v1.nn.dynamic_rnn(v1.nn.rnn_cell.BasicLSTMCell(128), tf.reshape(X, [-1, 28, 28]), dtype=tf.float32)
    logits = dense(outputs[:, -1], 10)
loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
opt = v1.train.AdamOptimizer(0.001) if args.model == "rnn" else v1.train.GradientDescentOptimizer(0.01)
train = opt.minimize(loss)
xtr, ytr, _, _ = common.load_mnist()
config = v1.ConfigProto(intra_op_parallelism_threads=args.threads, inter_op_parallelism_threads=1)
with v1.Session(config=config) as s:
    s.run(v1.global_variables_initializer())
    step = lambda xb, yb: s.run(train, {X: xb, y: yb})
    ts = common.time_steps(step, common.batches_forever(xtr, ytr, args.batch), args.warmup, args.steps)
print(f"RESULT engine=tf model={args.model} threads={args.threads} batch={args.batch} "
      f"step_ms={1e3 * float(np.median(ts)):.3f}", flush=True)
