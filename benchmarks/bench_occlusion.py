#!/usr/bin/env python3
"""dlviz.occlusion against Captum's Occlusion: same model, image, windows, stride, baseline and softmax score.

Captum runs in its default setting (one occluded copy per forward pass) and batched
(``perturbations_per_eval`` = 16 and 64); the faster Captum setting is compared with dlviz's defaults.
Both run in this process, alternately, several times; the best time of each is kept.

    python benchmarks/bench_occlusion.py            # LeNet on an MNIST digit, ResNet-18 and AlexNet at 224 px
    python benchmarks/bench_occlusion.py --quick    # LeNet only

Prints one line per case and the ratio (Captum's best time / dlviz's time; above 1 means dlviz is faster).
"""
import argparse
import time
import warnings

import torch

import dlviz
from dlviz.attribution.occlusion import window_starts


def case_lenet():
    try:
        model = dlviz.models.zoo.load("lenet_mnist")
        name = "LeNet (shipped weights)"
    except FileNotFoundError:
        torch.manual_seed(0)
        model, name = dlviz.models.zoo.LeNet().eval(), "LeNet (random weights)"
    try:
        images, labels = dlviz.data.tensors(dlviz.data.mnist(train=False), limit=1)
        x, target = images[:1], int(labels[0])
    except Exception:  # no data folder: a random image is as good for timing
        torch.manual_seed(0)
        x, target = torch.rand(1, 1, 28, 28), 3
    return name, model, x, target, 6, 2


def case_torchvision(arch, window, stride):
    import torchvision

    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)(weights=None).eval()
    return f"{arch} (random weights) 224 px", model, torch.rand(1, 3, 224, 224), 1, window, stride


def best_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def run(case, repeats):
    from captum.attr import Occlusion

    name, model, x, target, window, stride = case
    channels = x.shape[1]
    forward = lambda z: torch.softmax(model(z), dim=1)  # noqa: E731

    def captum(per_eval):
        return Occlusion(forward).attribute(x, target=target, sliding_window_shapes=(channels, window, window),
                                            strides=(channels, stride, stride), baselines=0.0,
                                            perturbations_per_eval=per_eval)

    def ours():
        return dlviz.occlusion(model, x, target, window=window, stride=stride)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.testing.assert_close(ours(), captum(16))  # same result before timing anything
        runs = {"dlviz": ours, "captum x1": lambda: captum(1), "captum x16": lambda: captum(16),
                "captum x64": lambda: captum(64)}
        times = {key: float("inf") for key in runs}
        for _ in range(repeats):  # alternate, so that a busy moment of the machine hits all of them
            for key, fn in runs.items():
                times[key] = min(times[key], best_time(fn, 1))
    best_captum = min(v for k, v in times.items() if k != "dlviz")
    windows = len(window_starts(x.shape[-1], window, stride)) ** 2
    print(f"{name}: window {window}, stride {stride} ({windows} windows)")
    print("    " + "   ".join(f"{k} {v:.3f} s" for k, v in times.items()))
    print(f"    ratio (best Captum / dlviz): {best_captum / times['dlviz']:.2f}")
    return best_captum / times["dlviz"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="LeNet only")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadiest on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads")
    cases = [case_lenet]
    if not args.quick:
        cases += [lambda: case_torchvision("resnet18", 48, 24), lambda: case_torchvision("alexnet", 32, 16)]
    ratios = [run(make(), args.repeats) for make in cases]
    print(f"slowest ratio: {min(ratios):.2f} (dlviz is {'at least as fast' if min(ratios) >= 1 else 'SLOWER'})")


if __name__ == "__main__":
    main()
