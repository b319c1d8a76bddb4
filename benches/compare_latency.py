"""One-image inference latency and the 10,000-image evaluation of the slides' CNN, tensorgraph
against TensorFlow (TF1 graph mode) on the same frozen graph, alternately in one run (#19).

TensorFlow builds the CNN (conv 32 3x3 s1 SAME relu, conv 64 3x3 s2 SAME relu, max-pool 2x2,
dense 64 relu, dense 10; seeded random weights), freezes it to a GraphDef and times it;
tensorgraph imports that file (`cargo bench --bench latency -- --graph FILE`) and times it too.
Medians over rounds; ratios are tensorgraph / TF (below 1: tensorgraph is faster).

usage (from the repository root):
    python3 benches/compare_latency.py [--rounds 3] [--threads 2] [--python /tmp/peers-venv/bin/python]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

TF_SIDE = r'''
import gzip, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tf.compat.v1.layers needs tf_keras under TF 2.16+
import numpy as np
import tensorflow as tf
tf1 = tf.compat.v1
tf1.disable_eager_execution()
pb, threads, runs, evals = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
with gzip.open("data/mnist/t10k-images-idx3-ubyte.gz") as f:
    x_test = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784).astype(np.float32) / 255.0
if not os.path.exists(pb):
    g = tf.Graph()
    with g.as_default():
        tf1.set_random_seed(7)
        X = tf1.placeholder(tf.float32, (None, 784), name="X")
        h = tf.reshape(X, [-1, 28, 28, 1])
        for name, filters, stride in [("conv1", 32, 1), ("conv2", 64, 2)]:
            h = tf1.layers.conv2d(h, filters, 3, stride, "SAME", activation=tf.nn.relu, name=name)
        h = tf.reshape(tf.nn.max_pool2d(h, [1, 2, 2, 1], [1, 2, 2, 1], "VALID"), [-1, 64 * 7 * 7])
        h = tf1.layers.dense(h, 64, activation=tf.nn.relu, name="fc1")
        tf.identity(tf1.layers.dense(h, 10, name="output"), name="logits")
        with tf1.Session(graph=g) as s:
            s.run(tf1.global_variables_initializer())
            frozen = tf1.graph_util.convert_variables_to_constants(s, g.as_graph_def(), ["logits"])
    with open(pb, "wb") as f:
        f.write(frozen.SerializeToString())
gd = tf1.GraphDef()
with open(pb, "rb") as f:
    gd.ParseFromString(f.read())
config = tf1.ConfigProto(intra_op_parallelism_threads=threads, inter_op_parallelism_threads=1)
with tf.Graph().as_default() as g:
    tf.import_graph_def(gd, name="")
    with tf1.Session(graph=g, config=config) as s:
        one, times = x_test[:1], []
        for k in range(runs + runs // 10):
            t0 = time.perf_counter()
            s.run("logits:0", {"X:0": one})
            if k >= runs // 10:
                times.append((time.perf_counter() - t0) * 1e6)
        times.sort()
        s.run("logits:0", {"X:0": x_test})
        ev = []
        for _ in range(evals):
            t0 = time.perf_counter()
            s.run("logits:0", {"X:0": x_test})
            ev.append(time.perf_counter() - t0)
        print(f"RESULT engine=tensorflow-{tf.__version__} threads={threads} one_image_us={times[len(times) // 2]:.1f} "
              f"p10_us={times[len(times) // 10]:.1f} p90_us={times[len(times) * 9 // 10]:.1f} "
              f"eval_10000_s={sorted(ev)[len(ev) // 2]:.3f}")
'''


def fields(line):
    return {k: v for k, v in (p.split("=", 1) for p in line.split()[1:])}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--evals", type=int, default=5)
    ap.add_argument("--python", default="/tmp/peers-venv/bin/python")
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--bench", "latency"], cwd=ROOT, check=True,
                   capture_output=True)
    pb = os.path.join(tempfile.mkdtemp(), "cnn_frozen.pb")
    bench = ["cargo", "bench", "-q", "--bench", "latency", "--", "--graph", pb, "--threads", str(args.threads),
             "--runs", str(args.runs), "--evals", str(args.evals)]
    tf_cmd = [args.python, "-c", TF_SIDE, pb, str(args.threads), str(args.runs), str(args.evals)]
    results = {"tf": [], "tg": []}
    for r in range(args.rounds):
        for who, cmd in [("tf", tf_cmd), ("tg", bench)]:
            out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            line = [l for l in out.stdout.splitlines() if l.startswith("RESULT")]
            if out.returncode != 0 or not line:
                sys.exit(f"{who} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
            print(line[-1], flush=True)
            results[who].append(fields(line[-1]))
    med = lambda who, key: statistics.median(float(f[key]) for f in results[who])
    for key, what in [("one_image_us", "one-image inference (us)"), ("eval_10000_s", "10,000-image evaluation (s)")]:
        tg, tf = med("tg", key), med("tf", key)
        print(f"{what}: tensorgraph {tg:.3f}, TensorFlow {tf:.3f}, ratio {tg / tf:.2f} (medians of {args.rounds})")
    print(f"tensorgraph's one run unsplit (BatchSplit::Off): {med('tg', 'eval_10000_unsplit_s'):.3f} s; "
          f"200 images per run: {med('tg', 'eval_chunks_200_s'):.3f} s")


if __name__ == "__main__":
    main()
