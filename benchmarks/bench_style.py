#!/usr/bin/env python3
"""Time per L-BFGS evaluation of dlviz.style_transfer (one forward and backward pass of VGG-19 up to conv5_1, the
Gram matrices and the losses) at 256 px, and what it adds up to for a whole run.

    python benchmarks/bench_style.py                  # 256 px, VGG-19 (pretrained if cached, else random weights)
    python benchmarks/bench_style.py --size 128 256 512 --threads 1

For each size it prints the best and median seconds of one evaluation measured alone (after a warm-up), and the
seconds per evaluation of a full ``style_transfer`` run of ``--steps`` evaluations (which adds L-BFGS's own work).
"""
import argparse
import statistics
import time

import torch

from dlviz import style


def images(size):
    try:
        from dlviz import data
        return data.sample_image("astronaut", size), data.sample_image("starry_night", size), "astronaut, starry_night"
    except Exception:  # no data folder: random images time the same
        g = torch.Generator().manual_seed(0)
        return torch.rand(3, size, size, generator=g), torch.rand(3, size, size, generator=g), "random images"


def one_evaluation(loss, x):
    x = x.detach().clone().requires_grad_(True)
    start = time.perf_counter()
    total, _ = loss(x)
    total.backward()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs="+", default=[256], help="shorter side in pixels")
    parser.add_argument("--repeats", type=int, default=5, help="timed evaluations per size")
    parser.add_argument("--steps", type=int, default=10, help="evaluations in the full style_transfer run")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    extractor = style.vgg19_features("auto")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {extractor.description}")
    print(f"{'size':>10s} {'best s/eval':>12s} {'median s/eval':>14s} {'run s/eval':>11s}  images")
    for size in args.size:
        content, painting, what = images(size)
        c = style._resize_shorter(style._load(content, "content", "cpu", torch.float32)[0], size)
        s = style._resize_shorter(style._load(painting, "style", "cpu", torch.float32)[0], size)
        loss = style.StyleLoss(extractor, s, c, style_weight=10.0)
        one_evaluation(loss, c)  # warm-up
        times = [one_evaluation(loss, c) for _ in range(args.repeats)]
        result, info = style.style_transfer(content, painting, steps=args.steps, size=size, extractor=extractor,
                                            return_info=True, progress=False)
        per_eval = info.seconds / max(len(info.loss), 1)
        shape = "x".join(map(str, c.shape[-2:]))
        print(f"{shape:>10s} {min(times):12.3f} {statistics.median(times):14.3f} {per_eval:11.3f}  {what}")


if __name__ == "__main__":
    main()
