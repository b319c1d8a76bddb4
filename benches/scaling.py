"""The scaling table: median training-step time against batch size and threads for the slides'
MLP and CNN and the LSTM tutorial, tensorgraph (`cargo bench --bench train`) and TensorFlow
(benches/tf_step.py) alternating in one run, with the fraction of the FMA peak each reaches
(`cargo bench --bench fma_peak`, measured first). Prints a markdown table for BENCHMARKS.md.

usage (repository root): python3 benches/scaling.py [--models mlp,cnn,rnn] [--batches 1,10,100,1000]
                         [--threads 1,2] [--reps 3] [--python /tmp/peers-venv/bin/python]
"""
import argparse
import os
import re
import statistics
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ap = argparse.ArgumentParser()
ap.add_argument("--models", default="mlp,cnn,rnn")
ap.add_argument("--batches", default="1,10,100,1000")
ap.add_argument("--threads", default=f"1,{os.cpu_count()}" if os.cpu_count() > 1 else "1")
ap.add_argument("--reps", type=int, default=3)
ap.add_argument("--python", default="/tmp/peers-venv/bin/python")
args = ap.parse_args()

# Multiply-adds x 2 of one training step per image: the forward, the weight gradients (as
# many), and the input gradients of every layer but the first (nothing needs the input's).
FLOP_PER_IMAGE = {
    "mlp": 2 * 2 * (784 * 300 + 300 * 100 + 100 * 10) + 2 * (300 * 100 + 100 * 10),
    # conv1 28x28x32 taps 9, conv2 14x14x64 taps 288, dense 3136x64, 64x10 (conv1's input gradient is not computed)
    "cnn": 2 * (28 * 28 * 32 * 9) * 2 + 3 * 2 * (14 * 14 * 64 * 288 + 3136 * 64 + 64 * 10),
    # 28 steps of [x, h] (156) x 512 gates, and the dense layer; the input gradient only for h (128 of 156)
    "rnn": 2 * 2 * (28 * 156 * 512 + 128 * 10) + 2 * (28 * 128 * 512 + 128 * 10),
}


def run(cmd, env=None):
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return out.stdout


# 20 warm-up steps: past the trial runs in which a plan learns whether the second core's helper
# pays (kernels::pair::Choice, 16 runs), as a training loop of thousands of steps is.
def steps_for(batch):
    return {1: 200, 10: 100, 100: 30}.get(batch, 10)


def ours(model, batch, threads):
    out = run(["cargo", "bench", "-q", "--bench", "train", "--", "--model", model, "--batch", str(batch),
               "--threads", str(threads), "--warmup", "20", "--steps", str(steps_for(batch)), "--eval", "false"])
    return float(re.search(r"step_ms=([0-9.]+)", out).group(1))


def tf(model, batch, threads):
    out = run([args.python, "benches/tf_step.py", "--model", model, "--batch", str(batch), "--threads", str(threads),
               "--warmup", "20", "--steps", str(steps_for(batch))])
    return float(re.search(r"step_ms=([0-9.]+)", out).group(1))


peak = {int(t): float(g) for t, g in re.findall(r"threads=(\d+) .*?gflops=([0-9.]+)", run(["cargo", "bench", "-q", "--bench", "fma_peak"]))}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"CPU: {cpu}; fma_peak GFLOP/s: {peak}")
run(["cargo", "bench", "-q", "--bench", "train", "--no-run"])
rows = []
for model in args.models.split(","):
    for batch in map(int, args.batches.split(",")):
        for threads in map(int, args.threads.split(",")):
            a, b = [], []
            for _ in range(args.reps):
                a.append(ours(model, batch, threads))
                b.append(tf(model, batch, threads))
            o, t = statistics.median(a), statistics.median(b)
            gflops = FLOP_PER_IMAGE[model] * batch / (o * 1e-3) / 1e9
            p = peak.get(threads) or peak[max(peak)]
            rows.append((model, batch, threads, o, t, o / t, gflops / p))
            print(f"{model} batch={batch} threads={threads}: ours {o:.3f} ms, TF {t:.3f} ms, ratio {o / t:.2f}, "
                  f"{100 * gflops / p:.0f}% of peak", flush=True)
print("\n| model | batch | threads | tensorgraph ms/step | TF ms/step | ratio | ours, % of FMA peak |")
print("|---|---|---|---|---|---|---|")
for model, batch, threads, o, t, r, f in rows:
    print(f"| {model} | {batch} | {threads} | {o:.3f} | {t:.3f} | {r:.2f} | {100 * f:.0f}% |")
