"""Runs tensorgraph's examples and the TensorFlow / PyTorch peers of ../shared/peers alternately in
one run on real MNIST and prints medians and ratios (the machines are shared and noisy).

usage (from the repository root, after `cargo build --release --examples`):
    python3 benches/compare_peers.py mlp [--reps 3] [--peers tf,torch] [--python /tmp/peers-venv/bin/python]
    python3 benches/compare_peers.py cnn --opt adam --peers tf,torch
    python3 benches/compare_peers.py rnn          # mnist_rnn against ../shared/peers/tf_rnn_peer.py (TF only)

Peers are installed as ../shared/peers/README.md says (benches/compare_peers.sh installs TensorFlow
when missing and runs this script). Missing peers are skipped with a note.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEERS = os.path.join(ROOT, "..", "shared", "peers")

ap = argparse.ArgumentParser()
ap.add_argument("model", choices=["mlp", "cnn", "rnn"])
ap.add_argument("--opt", default="sgd", choices=["sgd", "adam"], help="the CNN's optimizer (the MLP's is sgd)")
ap.add_argument("--reps", type=int, default=3)
ap.add_argument("--peers", default="tf")
ap.add_argument("--python", default="/tmp/peers-venv/bin/python")
args = ap.parse_args()


def ours(model):
    exe = os.path.join(ROOT, "target", "release", "examples", f"mnist_{model}")
    cmd = [exe, "--epochs", "1"] + (["--optimizer", args.opt] if model == "cnn" else [])
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    acc = float(re.search(r"Test accuracy: ([0-9.]+)", out).group(1))
    train_s = float(re.search(r"\(training ([0-9.]+) s\)", out).group(1))
    return dict(epoch_s=train_s, test_acc=acc)


def rnn_peer(name):
    if name != "tf":
        raise RuntimeError(f"no {name} peer of the recurrent tutorial")
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    cmd = [args.python, os.path.join(PEERS, "tf_rnn_peer.py"), "--epochs", "1"]
    r = subprocess.run(cmd, cwd=PEERS, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
    line = [l for l in r.stdout.splitlines() if l.startswith("epoch=")][-1]
    kv = dict(p.split("=", 1) for p in line.split())
    return dict(epoch_s=float(kv["epoch_wall_s"]), test_acc=float(kv["test_acc"]))


def peer(name, model):
    if model == "rnn":
        return rnn_peer(name)
    script = os.path.join(PEERS, f"{name}_peer.py")
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    cmd = [args.python, script, model, "real", "--opt", args.opt]
    r = subprocess.run(cmd, cwd=PEERS, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
    line = [l for l in r.stdout.splitlines() if l.startswith("RESULT")][-1]
    kv = dict(p.split("=", 1) for p in line.split()[1:])
    return dict(epoch_s=float(kv["epoch_wall_s"]), test_acc=float(kv["test_acc"]))


runs = {"tensorgraph": []}
peers = [p for p in args.peers.split(",") if p]
for p in peers:
    runs[p] = []
for rep in range(args.reps):
    runs["tensorgraph"].append(ours(args.model))
    for p in list(peers):
        try:
            runs[p].append(peer(p, args.model))
        except Exception as e:  # a peer that is not installed: say so and go on
            print(f"note: peer {p} failed: {e}", file=sys.stderr)
            peers.remove(p)
            del runs[p]
    print(f"rep {rep}: " + ", ".join(f"{k} {v[-1]['epoch_s']:.2f} s" for k, v in runs.items() if v), flush=True)

med = {k: statistics.median(r["epoch_s"] for r in v) for k, v in runs.items() if v}
label = f"{args.model} ({args.opt})" if args.model == "cnn" else args.model
print(f"\n{label}: real MNIST epoch (60,000 images), median of {args.reps} alternating runs")
print(f"{'engine':<14}{'s/epoch':>10}{'test acc (median)':>20}{'ratio to tf':>14}")
for k, v in runs.items():
    if not v:
        continue
    acc = statistics.median(r["test_acc"] for r in v)
    ratio = f"{med[k] / med['tf']:.2f}" if "tf" in med else "-"
    print(f"{k:<14}{med[k]:>10.2f}{acc:>20.4f}{ratio:>14}")
