#!/usr/bin/env python3
"""Retrain the course's shipped models from scratch and write their weights into dlviz/weights/.

Usage (from the repository root, with the data folder in DLVIZ_DATA or datasets/):
    python tools/train_zoo.py lenet_mnist            # 5 epochs on the 60k MNIST training images (minutes on a CPU)
    python tools/train_zoo.py mlp_mnist              # 12 epochs (about 2 minutes)
    python tools/train_zoo.py charlstm_shakespeare   # 800 steps on the first 90% of Tiny Shakespeare (about 20 min);
                                                     # validation loss on the last 10%
    python tools/train_zoo.py all
    python tools/train_zoo.py lenet_mnist --output-dir /tmp/check   # retrain without replacing the shipped weights

Uses the best device here (a GPU when present; --device cpu forces the CPU) and one CPU thread by default
(--threads). Seeds are fixed; the metrics measured at the end (MNIST test error, or validation loss in nats per
character) are stored in the checkpoint and printed. Results can differ in the last digits between machines.
"""
from __future__ import annotations

import argparse
import math
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

import dlviz  # noqa: E402
from dlviz import text as textlib, zoo  # noqa: E402

SEED = 0


def _mnist_tensors():
    train = dlviz.data.tensors(dlviz.data.mnist(train=True))
    test = dlviz.data.tensors(dlviz.data.mnist(train=False))
    return train, test


def _shift(images: torch.Tensor, pixels: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image (N, 1, H, W) by its own random offset of up to ``pixels`` in x and y (zero fill)."""
    n, _, h, w = images.shape
    padded = F.pad(images, (pixels,) * 4)
    dy = torch.randint(0, 2 * pixels + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pixels + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, :]
    return padded[torch.arange(n)[:, None, None], 0, rows, cols].unsqueeze(1)


def _train_classifier(model, train, test, *, epochs, lr, batch_size, shift, device, weight_decay=0.0):
    """Adam with a one-cycle learning-rate schedule over all steps; returns test metrics and seconds."""
    X, y = train
    model.to(device)
    steps_per_epoch = math.ceil(len(X) / batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch,
                                                   pct_start=0.15)
    generator = torch.Generator().manual_seed(SEED)
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(X), generator=generator)
        total, seen = 0.0, 0
        for idx in tqdm(order.split(batch_size), desc=f"epoch {epoch + 1}/{epochs}", leave=False):
            inputs, labels = X[idx], y[idx]
            if shift:
                inputs = _shift(inputs, shift, generator)
            inputs, labels = inputs.to(device), labels.to(device)
            loss = F.cross_entropy(model(inputs), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total, seen = total + float(loss.detach()) * len(idx), seen + len(idx)
        metrics = dlviz.evaluate(model, test)
        print(f"epoch {epoch + 1}: train loss {total / seen:.4f}, test error {100 * (1 - metrics['accuracy']):.2f}%",
              flush=True)
    seconds = time.perf_counter() - start
    model.cpu().eval()
    return dlviz.evaluate(model, test), seconds


def train_lenet(device):
    dlviz.seed(SEED)
    train, test = _mnist_tensors()
    config = {"dropout": 0.5}
    recipe = {"epochs": 5, "lr": 2e-3, "batch_size": 128, "shift": 0, "weight_decay": 0.0}
    model = zoo.build("lenet_mnist", config)
    metrics, seconds = _train_classifier(model, train, test, device=device, **recipe)
    return model, config, metrics, seconds, recipe


def train_mlp(device):
    dlviz.seed(SEED)
    train, test = _mnist_tensors()
    config = {"hidden": [256, 256], "dropout": 0.2}
    recipe = {"epochs": 12, "lr": 2e-3, "batch_size": 128, "shift": 0, "weight_decay": 0.0}
    model = zoo.build("mlp_mnist", config)
    metrics, seconds = _train_classifier(model, train, test, device=device, **recipe)
    return model, config, metrics, seconds, recipe


def _save_classifier(name, model, config, metrics, seconds, recipe, folder=None):
    meta = {"test_accuracy": round(metrics["accuracy"], 6), "test_error_percent": round(100 * (1 - metrics["accuracy"]), 3),
            "test_loss": round(metrics["loss"], 5), "seed": SEED, "seconds": round(seconds, 1),
            "data": "MNIST, 60,000 training images; tested on the 10,000 test images",
            "optimizer": "AdamW with a one-cycle learning-rate schedule", **recipe}
    path = zoo.save(name, model, config, meta, folder=folder)
    print(f"{name}: test error {meta['test_error_percent']:.2f}% after {recipe['epochs']} epochs "
          f"({seconds:.0f} s) -> {path.name}")


# --- the char-LSTM ----------------------------------------------------------------------------------------------

LSTM_CONFIG = {"hidden": 256, "layers": 2, "embed": 48, "dropout": 0.0}
LSTM_RECIPE = {"steps": 800, "batch_size": 32, "length": 128, "lr": 3e-3, "clip_grad_norm": 1.0}


def train_charlstm(device, steps: int | None = None, folder=None):
    dlviz.seed(SEED)
    full = dlviz.data.tiny_shakespeare()
    vocab = textlib.CharVocab(full)
    train_text, val_text = textlib.split(full, 0.9)
    train_codes, val_codes = vocab.encode(train_text), vocab.encode(val_text)
    recipe = dict(LSTM_RECIPE)
    if steps is not None:
        recipe["steps"] = steps
    config = {**LSTM_CONFIG, "vocab": vocab.chars, "vocab_size": len(vocab)}
    model = zoo.build("charlstm_shakespeare", config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe["lr"], weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe["lr"], total_steps=recipe["steps"],
                                                   pct_start=0.05)
    generator = torch.Generator().manual_seed(SEED)
    length, batch = recipe["length"], recipe["batch_size"]
    window = torch.arange(length + 1)
    start, running = time.perf_counter(), None
    bar = tqdm(range(recipe["steps"]), desc="char-LSTM steps")
    for step in bar:
        model.train()
        starts = torch.randint(0, len(train_codes) - length - 1, (batch,), generator=generator)
        chunk = train_codes[starts[:, None] + window].to(device)
        logits, _ = model(chunk[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), chunk[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), recipe["clip_grad_norm"])
        optimizer.step()
        schedule.step()
        value = float(loss.detach())
        running = value if running is None else 0.98 * running + 0.02 * value
        if step % 20 == 0:
            bar.set_postfix(loss=f"{running:.3f}")
        if (step + 1) % 100 == 0:
            val = textlib.loss_per_char(model, val_codes[:20_000])
            print(f"step {step + 1}: train loss ~{running:.3f}, val loss (first 20k chars) {val:.4f} nats/char "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    seconds = time.perf_counter() - start
    model.cpu().eval()
    val = textlib.loss_per_char(model, val_codes)
    train_sub = textlib.loss_per_char(model, train_codes[-len(val_codes):])
    model.vocab = vocab
    meta = {"val_loss_nats_per_char": round(val, 4), "val_bits_per_char": round(val / math.log(2), 4),
            "train_loss_nats_per_char_last_chunk": round(train_sub, 4),
            "seed": SEED, "seconds": round(seconds, 1),
            "epochs": round(recipe["steps"] * batch * length / len(train_codes), 3),
            "data": "Tiny Shakespeare: first 90% for training, last 10% for validation",
            "optimizer": "AdamW (weight decay 0.01), one-cycle schedule, gradient norm clipped", **recipe}
    path = zoo.save("charlstm_shakespeare", model, config, meta, half=True, folder=folder)
    print(f"charlstm_shakespeare: validation loss {val:.4f} nats/char after {recipe['steps']} steps "
          f"({seconds:.0f} s) -> {path.name}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=zoo.available() + ["all"])
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: the best device here)")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads (default 1: on a busy machine more threads can be much slower)")
    parser.add_argument("--output-dir", default=None,
                        help="write the weights here instead of into dlviz/weights/ (to compare with the shipped ones)")
    parser.add_argument("--steps", type=int, default=None, help="char-LSTM: override the number of steps (testing)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device) if args.device else dlviz.device()
    names = zoo.available() if args.name == "all" else [args.name]
    for name in names:
        if name == "lenet_mnist":
            _save_classifier(name, *train_lenet(device), folder=args.output_dir)
        elif name == "mlp_mnist":
            _save_classifier(name, *train_mlp(device), folder=args.output_dir)
        else:
            train_charlstm(device, args.steps, folder=args.output_dir)


if __name__ == "__main__":
    main()
