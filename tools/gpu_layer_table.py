"""Per-layer timing of convbench's CUDA conv2d against cuDNN on the homework layers.

For every layer and pass (forward, grad-input, grad-weight) it times each of our
algorithms, our Auto choice and cuDNN (torch, cudnn.benchmark on, TF32 off).
Times are GPU time per call in microseconds: 20 calls are captured into a CUDA
graph (so host launch overhead is out of the number, for both sides alike),
the graph is replayed after a warm-up, CUDA events bracket the replays, and
the minimum over repeats is kept. Where capture fails it falls back to an
eager loop (marked '*'), which includes launch overhead.

usage: python tools/gpu_layer_table.py [OUTDIR]   (writes layers.csv and layers.md there)
"""
import csv
import os
import sys

import torch

from convbench import _C

# (name, N, Cin, Cout, kernel, HxW, padding); stride 1.
LAYERS = [
    ("c1 3x3 1-16 @32", 50, 1, 16, 3, 32, 0),
    ("c1 3x3 3-16 @32", 50, 3, 16, 3, 32, 0),
    ("5x5 16-8 @30", 50, 16, 8, 5, 30, 0),
    ("7x7 8-16 @13", 50, 8, 16, 7, 13, 0),
    ("3x3 16-8 @30", 50, 16, 8, 3, 30, 0),
    ("5x5 8-16 @28", 50, 8, 16, 5, 28, 0),
    ("5x5 16-16 @12", 50, 16, 16, 5, 12, 0),
    ("3x3 1-8 @32", 50, 1, 8, 3, 32, 0),
    ("3x3 8-16 @30", 50, 8, 16, 3, 30, 0),
    ("3x3 16-8 @28", 50, 16, 8, 3, 28, 0),
    ("3x3 8-16 @26", 50, 8, 16, 3, 26, 0),
    ("3x3 16-16 @12", 50, 16, 16, 3, 12, 0),
    ("3x3 16-8 @10", 50, 16, 8, 3, 10, 0),
    ("3x3 1-16 @28", 50, 1, 16, 3, 28, 0),
    ("7x7 16-8 @26", 50, 16, 8, 7, 26, 0),
    ("5x5 8-16 @10", 50, 8, 16, 5, 10, 0),
    ("mnist 3x3 1-8 @28 p1", 128, 1, 8, 3, 28, 1),
    ("mnist 3x3 8-16 @14 p1", 128, 8, 16, 3, 14, 1),
    ("mnist 3x3 16-32 @7 p1", 128, 16, 32, 3, 7, 1),
    ("mnist 3x3 8-8 @28 p1", 128, 8, 8, 3, 28, 1),
    ("mnist 3x3 16-16 @14 p1", 128, 16, 16, 3, 14, 1),
    ("mnist 3x3 32-32 @7 p1", 128, 32, 32, 3, 7, 1),
    ("cifar 3x3 16-32 @15", 50, 16, 32, 3, 15, 0),
    ("cifar 3x3 32-64 @15", 50, 32, 64, 3, 15, 0),
    ("cifar 3x3 64-128 @15", 50, 64, 128, 3, 15, 0),
]

PASSES = ("fwd", "dgrad", "wgrad")
CALLS_PER_GRAPH = 20


def time_us(fn, repeats=5, replays=10):
    """GPU time of one fn() call in microseconds, and whether it is graph-timed."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(5):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    try:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for _ in range(CALLS_PER_GRAPH):
                fn()
        graph.replay()
        run, calls, graphed = graph.replay, CALLS_PER_GRAPH * replays, True
    except Exception:  # capture unsupported: eager loop, includes launch overhead
        torch.cuda.synchronize()
        run, calls, graphed = fn, replays * CALLS_PER_GRAPH, False
        replays = calls
    best = float("inf")
    for _ in range(repeats):
        torch.cuda.synchronize()
        start.record()
        for _ in range(replays):
            run()
        end.record()
        end.synchronize()
        best = min(best, start.elapsed_time(end) * 1000.0 / calls)
    return best, graphed


def layer_setup(N, C, K, R, HW, pad):
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(N, C, HW, HW, device="cuda", generator=g)
    w = torch.randn(K, C, R, R, device="cuda", generator=g)
    b = torch.randn(K, device="cuda", generator=g)
    P = HW + 2 * pad - R + 1
    dy = torch.randn(N, K, P, P, device="cuda", generator=g)
    shape = [N, C, HW, HW, K, R, R, P, P, 1, 1, pad, pad, 1, 1, 1]
    return x, w, b, dy, shape


def ours(pass_, algo, x, w, b, dy, shape, outs):
    y, dx, dw = outs
    a = _C.CONV2D_ALGO_IDS[algo]
    dt = _C.DTYPE_IDS["float32"]
    dev = x.device.index

    def call():
        st = torch.cuda.current_stream().cuda_stream
        if pass_ == "fwd":
            _C.conv2d_forward(1, dev, st, dt, a, shape, x.data_ptr(), w.data_ptr(), b.data_ptr(),
                              y.data_ptr())
        elif pass_ == "dgrad":
            _C.conv2d_backward_input(1, dev, st, dt, a, shape, dy.data_ptr(), w.data_ptr(),
                                     dx.data_ptr())
        else:
            _C.conv2d_backward_weight(1, dev, st, dt, a, shape, dy.data_ptr(), x.data_ptr(),
                                      dw.data_ptr())

    return call


def cudnn(pass_, x, w, b, dy, pad):
    conv_bwd = torch.ops.aten.convolution_backward
    if pass_ == "fwd":
        return lambda: torch.nn.functional.conv2d(x, w, b, padding=pad)
    mask = [True, False, False] if pass_ == "dgrad" else [False, True, False]
    return lambda: conv_bwd(dy, x, w, None, [1, 1], [pad, pad], [1, 1], False, [0, 0], 1, mask)


def main(outdir):
    if not torch.cuda.is_available() or not _C.cuda_compiled():
        print("gpu_layer_table: needs a CUDA GPU and convbench built with CUDA")
        return 1
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    names = {v: k for k, v in _C.CONV2D_ALGO_IDS.items()}
    algos = [names[a] for a in _C.conv2d_algos(1)]
    rows = []
    for name, N, C, K, R, HW, pad in LAYERS:
        x, w, b, dy, shape = layer_setup(N, C, K, R, HW, pad)
        outs = (torch.empty_like(dy), torch.empty_like(x), torch.empty_like(w))
        for p_i, pass_ in enumerate(PASSES):
            row = {"layer": name, "pass": pass_}
            graphed_all = True
            for algo in algos + ["auto"]:
                t, gr = time_us(ours(pass_, algo, x, w, b, dy, shape, outs))
                row[algo] = t
                graphed_all &= gr
            row["auto_is"] = names[_C.conv2d_choose_algo(1, p_i, 0, shape)]
            row["cudnn"], gr = time_us(cudnn(pass_, x, w, b, dy, pad))
            row["graphed"] = graphed_all and gr
            row["best_ours"] = min(algos, key=lambda a: row[a])
            row["auto/cudnn"] = row["auto"] / row["cudnn"]
            rows.append(row)
            print(f"{name:24s} {pass_:5s} auto({row['auto_is']:13s}) {row['auto']:8.1f} us  "
                  f"cudnn {row['cudnn']:8.1f} us  ratio {row['auto/cudnn']:5.2f}  "
                  + " ".join(f"{a}={row[a]:.1f}" for a in algos), flush=True)

    os.makedirs(outdir, exist_ok=True)
    fields = ["layer", "pass"] + algos + ["auto", "auto_is", "cudnn", "auto/cudnn", "best_ours",
                                          "graphed"]
    with open(os.path.join(outdir, "layers.csv"), "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=fields)
        wr.writeheader()
        for r in rows:
            wr.writerow({k: (f"{v:.2f}" if isinstance(v, float) else v) for k, v in r.items()})
    lines = [
        f"# convbench CUDA conv2d vs cuDNN, float32, {torch.cuda.get_device_name()}",
        "",
        "GPU us per call (CUDA graph of 20 calls, min of 5 x 10 replays; cudnn.benchmark on, "
        "TF32 off). '*' = eager loop, launch overhead included.",
        "",
        "| layer | pass | " + " | ".join(algos) + " | auto (choice) | cuDNN | auto/cuDNN |",
        "|---|---|" + "---|" * len(algos) + "---|---|---|",
    ]
    for r in rows:
        mark = "" if r["graphed"] else "*"
        lines.append(f"| {r['layer']} | {r['pass']} | "
                     + " | ".join(f"{r[a]:.1f}" for a in algos)
                     + f" | {r['auto']:.1f} ({r['auto_is']}) | {r['cudnn']:.1f} | "
                     f"{r['auto/cudnn']:.2f}{mark} |")
    for p in PASSES:
        ratios = [r["auto/cudnn"] for r in rows if r["pass"] == p]
        geo = 1.0
        for v in ratios:
            geo *= v
        lines.append(f"\n{p}: geometric-mean auto/cuDNN time ratio {geo ** (1 / len(ratios)):.2f}"
                     f" over {len(ratios)} layers")
    text = "\n".join(lines)
    with open(os.path.join(outdir, "layers.md"), "w") as f:
        f.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "bench/results/gpu-layers"))
