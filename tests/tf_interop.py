"""Checkpoints both ways with real TensorFlow (tf.compat.v1), on the slides' MLP.

1. TensorFlow trains the MLP one epoch and saves a checkpoint; `mnist_mlp --restore` loads it
   into the graph tensorgraph builds and must print TensorFlow's test accuracy.
2. `mnist_mlp` trains one epoch and saves; TensorFlow lists the checkpoint
   (`tf.train.list_variables`), reads every tensor (`tf.train.load_checkpoint`) and restores it
   with `Saver.restore` into its own graph: its test accuracy must be tensorgraph's.

usage: python tests/tf_interop.py --bin target/release/examples/mnist_mlp --out DIR
(tests/tf_interop.sh installs TensorFlow 2.21 and builds the binary first.)
"""
import argparse
import gzip
import os
import re
import subprocess

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import tensorflow as tf

tf1 = tf.compat.v1
tf1.disable_eager_execution()

ap = argparse.ArgumentParser()
ap.add_argument("--bin", required=True)
ap.add_argument("--out", required=True)
ap.add_argument("--data", default="data/mnist")
args = ap.parse_args()


def images(name):
    with gzip.open(os.path.join(args.data, name)) as f:
        return np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784).astype(np.float32) / 255.0


def labels(name):
    with gzip.open(os.path.join(args.data, name)) as f:
        return np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)


x_train, y_train = images("train-images-idx3-ubyte.gz"), labels("train-labels-idx1-ubyte.gz")
x_test, y_test = images("t10k-images-idx3-ubyte.gz"), labels("t10k-labels-idx1-ubyte.gz")


def mlp():
    """The slide's MLP with TF1's variable names (tf.layers.dense's: hidden1/kernel, ...)."""
    g = tf.Graph()
    with g.as_default():
        tf1.set_random_seed(42)
        X = tf1.placeholder(tf.float32, (None, 784), name="X")
        y = tf1.placeholder(tf.int64, (None,), name="y")
        h = X
        with tf1.name_scope("dnn"):
            for name, units, act in [("hidden1", 300, tf.nn.relu), ("hidden2", 100, tf.nn.relu), ("outputs", 10, None)]:
                with tf1.variable_scope(name):
                    w = tf1.get_variable("kernel", (h.shape[1], units), initializer=tf1.glorot_uniform_initializer())
                    b = tf1.get_variable("bias", (units,), initializer=tf1.zeros_initializer())
                h = tf.matmul(h, w) + b
                h = act(h) if act else h
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=h))
        train = tf1.train.GradientDescentOptimizer(0.01).minimize(loss)
        accuracy = tf.reduce_mean(tf.cast(tf1.nn.in_top_k(h, y, 1), tf.float32))
        saver = tf1.train.Saver()
        init = tf1.global_variables_initializer()
    return g, X, y, train, accuracy, saver, init


def run_ours(*flags):
    out = subprocess.run([args.bin, "--data", args.data, *flags], check=True, capture_output=True, text=True).stdout
    print(out.strip())
    return out


def check(what, ours, theirs, tol=1e-4):
    ok = abs(ours - theirs) <= tol
    print(f"RESULT {what}: tensorgraph {ours:.4f} tensorflow {theirs:.4f} {'ok' if ok else 'MISMATCH'}")
    return ok


ok = True
g, X, y, train, accuracy, saver, init = mlp()
with tf1.Session(graph=g) as s:
    # 1. TensorFlow's checkpoint into tensorgraph.
    s.run(init)
    order = np.random.default_rng(0).permutation(len(y_train))
    for i in range(0, len(order) - 49, 50):
        idx = order[i : i + 50]
        s.run(train, {X: x_train[idx], y: y_train[idx]})
    acc_tf = float(s.run(accuracy, {X: x_test, y: y_test}))
    prefix = saver.save(s, os.path.join(args.out, "tf", "model.ckpt"), global_step=0)
    out = run_ours("--restore", prefix, "--epochs", "0")
    acc_tg = float(re.search(r"restored .*: Test accuracy: ([0-9.]+)", out).group(1))
    ok &= check("TF checkpoint restored by tensorgraph, test accuracy", acc_tg, acc_tf)

    # 2. tensorgraph's checkpoint into TensorFlow.
    out = run_ours("--epochs", "1", "--seed", "1", "--save", os.path.join(args.out, "tg"))
    acc_tg = float(re.search(r"^0 Train accuracy: \S+ Test accuracy: ([0-9.]+)", out, re.M).group(1))
    ours = os.path.join(args.out, "tg", "model-0")
    listed = dict(tf.train.list_variables(ours))
    want = {v.op.name: v.shape.as_list() for v in g.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)}
    print("RESULT variables listed by tf.train.list_variables:", listed)
    ok &= listed == want
    reader = tf.train.load_checkpoint(ours)
    saver.restore(s, ours)
    for v in g.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES):
        same = np.array_equal(reader.get_tensor(v.op.name), s.run(v))
        ok &= same
    acc_tf = float(s.run(accuracy, {X: x_test, y: y_test}))
    ok &= check("tensorgraph checkpoint restored by TF Saver, test accuracy", acc_tf, acc_tg)
print("RESULT", "all ok" if ok else "FAILED")
raise SystemExit(0 if ok else 1)
