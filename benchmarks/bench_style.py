#!/usr/bin/env python3
"""Time per L-BFGS evaluation of dlviz.style_transfer (one forward and backward pass of VGG-19 up to conv5_1, the
Gram matrices and the losses) in float32 and with bfloat16 convolutions, side by side in one process.

    python benchmarks/bench_style.py --threads 1            # 256 px, VGG-19 (pretrained if cached, else random)
    python benchmarks/bench_style.py --size 128 256 512 --threads 1

For each size it builds the loss twice (``precision="fp32"`` and ``precision="bf16"``), warms both up, then times
``--repeats`` rounds of one evaluation (loss + gradient) each, alternating (the order flips every round), and prints
the best and median seconds, the ratio fp32 / bf16 (above 1: bfloat16 faster), how far apart the two losses are
(relative) and the cosine between the two gradients. Then a full ``style_transfer`` run of ``--steps`` evaluations
in each precision: seconds per evaluation and the final loss relative to the first. On a CPU without native
bfloat16 (no avx512_bf16 / amx_bf16) the bf16 column is emulated and slower; ``precision="auto"`` would not pick it.
"""
import argparse
import statistics
import time

import torch

from dlviz.synthesis import style


def images(size):
    try:
        from dlviz import data
        return data.sample_image("astronaut", size), data.sample_image("starry_night", size), "astronaut, starry_night"
    except Exception:  # no data folder: random images time the same
        g = torch.Generator().manual_seed(0)
        return torch.rand(3, size, size, generator=g), torch.rand(3, size, size, generator=g), "random images"


def evaluation(loss, x):
    """One evaluation at ``x``: (seconds, loss, gradient)."""
    x = x.detach().clone().requires_grad_(True)
    start = time.perf_counter()
    total, _ = loss(x)
    total.backward()
    return time.perf_counter() - start, float(total.detach()), x.grad


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs="+", default=[256], help="shorter side in pixels")
    parser.add_argument("--repeats", type=int, default=5, help="timed evaluations per size and precision")
    parser.add_argument("--steps", type=int, default=10, help="evaluations in the full style_transfer runs")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    extractor = style.vgg19_features("auto", up_to="conv5_1")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {extractor.description}; "
          f"native bfloat16: {'yes' if style._native_bf16('cpu') else 'no'}; precision='auto' runs "
          f"{style._resolve_precision('auto', extractor)}")
    print(f"{'size':>9s} {'fp32 best':>9s} {'bf16 best':>9s} {'fp32 med':>9s} {'bf16 med':>9s} {'ratio':>6s} "
          f"{'loss diff':>9s} {'grad cos':>9s} {'run fp32':>9s} {'run bf16':>9s} {'end/start':>16s}  images")
    for size in args.size:
        content, painting, what = images(size)
        c = style._resize_shorter(style._load(content, "content", "cpu", torch.float32)[0], size)
        s = style._resize_shorter(style._load(painting, "style", "cpu", torch.float32)[0], size)
        # a point away from the content image, where both terms are non-zero
        x = 0.5 * c + 0.5 * torch.rand(c.shape, generator=torch.Generator().manual_seed(1))
        losses = {p: style.StyleLoss(extractor, s, c, style_weight=10.0, precision=p) for p in ("fp32", "bf16")}
        results = {p: evaluation(loss, x) for p, loss in losses.items()}   # warm-up, and the values compared
        times = {"fp32": [], "bf16": []}
        for r in range(args.repeats):
            for p in (("fp32", "bf16") if r % 2 == 0 else ("bf16", "fp32")):
                times[p].append(evaluation(losses[p], x)[0])
        (_, l32, g32), (_, l16, g16) = results["fp32"], results["bf16"]
        cosine = float(torch.nn.functional.cosine_similarity(g32.flatten(), g16.flatten(), dim=0))
        runs = {}
        for p in ("fp32", "bf16"):
            _, info = style.style_transfer(content, painting, steps=args.steps, size=size, extractor=extractor,
                                           precision=p, return_info=True, progress=False)
            runs[p] = (info.seconds / max(len(info.loss), 1), info.loss[-1] / info.loss[0])
        shape = "x".join(map(str, c.shape[-2:]))
        print(f"{shape:>9s} {min(times['fp32']):9.3f} {min(times['bf16']):9.3f} "
              f"{statistics.median(times['fp32']):9.3f} {statistics.median(times['bf16']):9.3f} "
              f"{min(times['fp32']) / min(times['bf16']):6.2f} {abs(l16 - l32) / l32:9.1e} {cosine:9.5f} "
              f"{runs['fp32'][0]:9.3f} {runs['bf16'][0]:9.3f} {runs['fp32'][1]:7.3f}/{runs['bf16'][1]:.3f}  {what}")


if __name__ == "__main__":
    main()
