#!/usr/bin/env python3
"""Retrain the course's shipped models from scratch and write their weights into dlviz/models/weights/.

Usage (from the repository root, with the data folder in DLVIZ_DATA or datasets/):
    python tools/train_zoo.py lenet_mnist            # 5 epochs on the 60k MNIST training images (re-measured
                                                     # 2026-11-29 on one thread of a busy 2-core machine: 233 s
                                                     # wall-clock, 121 s of CPU time; issue 14 measured
                                                     # about 80 s on a quiet machine)
    python tools/train_zoo.py mlp_mnist              # 12 epochs (31 s wall-clock, 28 s CPU, one thread, same day)
    python tools/train_zoo.py charlstm_shakespeare   # 800 steps on the first 90% of Tiny Shakespeare (recorded: about
                                                     # 20 minutes on one CPU thread, not re-measured); validation
                                                     # loss on the last 10%
    python tools/train_zoo.py dcgan_mnist            # notebook 14's DCGAN generator, 2500 steps of 64 images
                                                     # (recorded: about 10 minutes on one CPU thread, not re-measured)
    python tools/train_zoo.py all
    python tools/train_zoo.py lenet_mnist --output-dir /tmp/check   # retrain without replacing the shipped weights
    python tools/train_zoo.py mlp_mnist --steps 2 --output-dir /tmp/check   # a quick check that the recipe runs

Uses the best device here (a GPU when present; --device cpu forces the CPU) and one CPU thread by default
(--threads). Seeds are fixed; the metrics measured at the end (MNIST test error, or validation loss in nats per
character) are stored in the checkpoint with the training time in seconds (wall-clock) and printed; the MNIST
models also record the CPU threads and the precision ("fp32": these loops are plain float32 in the default memory
layout; they do not go through dlviz.fit and its bfloat16 "auto" setting, so a re-run follows the recipe of the
shipped weights). Results can differ in the last digits between machines. --steps N sets the number of optimizer
steps (for the MNIST models: stop after N, at most their epochs' worth), and the learning-rate schedule is fitted to
it; the metadata records the steps taken.
A few steps make a quick check that a recipe runs end to end; such weights are barely trained.
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
from dlviz.course import text as textlib  # noqa: E402
from dlviz.models import zoo  # noqa: E402

SEED = 0


def _mnist_tensors():
    train = dlviz.data.tensors(dlviz.data.mnist(train=True))
    test = dlviz.data.tensors(dlviz.data.mnist(train=False))
    return train, test


def _train_classifier(model, train, test, recipe, *, device, steps=None):
    """AdamW with a one-cycle learning-rate schedule over all steps (``steps`` caps them); returns test metrics and
    seconds, and records in ``recipe`` the steps taken and the passes over the data they make."""
    X, y = train
    epochs, lr, batch_size = recipe["epochs"], recipe["lr"], recipe["batch_size"]
    model.to(device)
    steps_per_epoch = math.ceil(len(X) / batch_size)
    total_steps = epochs * steps_per_epoch if steps is None else min(steps, epochs * steps_per_epoch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=recipe["weight_decay"])
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps, pct_start=0.15)
    generator = torch.Generator().manual_seed(SEED)
    start, taken = time.perf_counter(), 0
    for epoch in range(math.ceil(total_steps / steps_per_epoch)):
        model.train()
        order = torch.randperm(len(X), generator=generator)
        total, seen = 0.0, 0
        batches = order.split(batch_size)[:total_steps - taken]
        for idx in tqdm(batches, desc=f"epoch {epoch + 1}/{epochs}", leave=False):
            inputs, labels = X[idx].to(device), y[idx].to(device)
            loss = F.cross_entropy(model(inputs), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total, seen, taken = total + float(loss.detach()) * len(idx), seen + len(idx), taken + 1
        metrics = dlviz.evaluate(model, test)
        print(f"epoch {epoch + 1}: train loss {total / seen:.4f}, test error {100 * (1 - metrics['accuracy']):.2f}%",
              flush=True)
    seconds = time.perf_counter() - start
    model.cpu().eval()
    if taken < epochs * steps_per_epoch:
        recipe["epochs"] = round(taken / steps_per_epoch, 3)
    recipe["steps"] = taken
    recipe["threads"] = torch.get_num_threads() if device.type == "cpu" else None
    recipe["precision"] = "fp32"
    recipe["data"] = f"MNIST, {len(X):,} training images; tested on the {len(test[0]):,} test images"
    return dlviz.evaluate(model, test), seconds


def train_lenet(device, steps=None):
    dlviz.seed(SEED)
    train, test = _mnist_tensors()
    config = {"dropout": 0.5}
    recipe = {"epochs": 5, "lr": 2e-3, "batch_size": 128, "weight_decay": 0.0}
    model = zoo.build("lenet_mnist", config)
    metrics, seconds = _train_classifier(model, train, test, recipe, device=device, steps=steps)
    return model, config, metrics, seconds, recipe


def train_mlp(device, steps=None):
    dlviz.seed(SEED)
    train, test = _mnist_tensors()
    config = {"hidden": [256, 256], "dropout": 0.2}
    recipe = {"epochs": 12, "lr": 2e-3, "batch_size": 128, "weight_decay": 0.0}
    model = zoo.build("mlp_mnist", config)
    metrics, seconds = _train_classifier(model, train, test, recipe, device=device, steps=steps)
    return model, config, metrics, seconds, recipe


def _save_classifier(name, model, config, metrics, seconds, recipe, folder=None):
    meta = {"test_accuracy": round(metrics["accuracy"], 6),
            "test_error_percent": round(100 * (1 - metrics["accuracy"]), 3),
            "test_loss": round(metrics["loss"], 5), "seed": SEED, "seconds": round(seconds, 1),
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


DCGAN_RECIPE = dict(latent_dim=32, width=16, steps=2500, batch_size=64, lr=2e-4, betas=(0.5, 0.999))


def train_dcgan(device, steps: int | None = None, folder=None):
    """The DCGAN of notebook 14 on the 60k MNIST training images (dlviz.course.generate.train_gan with the paper's
    Adam); the generator's weights are stored as float16 with its sample quality measured by the shipped LeNet."""
    from dlviz.course import generate

    recipe = dict(DCGAN_RECIPE)
    if steps is not None:
        recipe["steps"] = steps
    X, _ = dlviz.data.tensors(dlviz.data.mnist(train=True))
    g = generate.Generator(recipe["latent_dim"], recipe["width"]).to(device)
    d = generate.Discriminator(recipe["width"]).to(device)
    history = generate.train_gan(g, d, X, steps=recipe["steps"], batch_size=recipe["batch_size"], lr=recipe["lr"],
                                 betas=recipe["betas"], snapshot_every=recipe["steps"],
                                 generator_rng=torch.Generator().manual_seed(SEED))
    g.cpu().eval()
    with torch.no_grad():
        samples = g(torch.randn(1000, recipe["latent_dim"], generator=torch.Generator().manual_seed(1)))
    quality = generate.sample_quality(zoo.load("lenet_mnist"), samples)
    meta = dict(recipe=recipe, seconds=round(history.seconds), device=str(device),
                confidence=round(quality.confidence, 4), inception_score=round(quality.inception_score, 3))
    path = generate.save_generator(g, meta, folder=folder)
    print(f"dcgan_mnist: {recipe['steps']} steps in {history.seconds:.0f} s; LeNet's confidence "
          f"{quality.confidence:.3f}, inception score {quality.inception_score:.2f} -> {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=zoo.available() + ["dcgan_mnist", "all"])
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: the best device here)")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads (default 1: on a busy machine more threads can be much slower)")
    parser.add_argument("--output-dir", default=None,
                        help="write the weights here instead of into dlviz/models/weights/ "
                             "(to compare with the shipped ones)")
    parser.add_argument("--steps", type=int, default=None,
                        help="number of optimizer steps (MNIST models: at most their epochs' worth); "
                             "a few make a quick check")
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps must be at least 1, got {args.steps}")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device) if args.device else dlviz.device()
    names = zoo.available() + ["dcgan_mnist"] if args.name == "all" else [args.name]
    for name in names:
        if name == "dcgan_mnist":
            train_dcgan(device, args.steps, folder=args.output_dir)
        elif name == "lenet_mnist":
            _save_classifier(name, *train_lenet(device, args.steps), folder=args.output_dir)
        elif name == "mlp_mnist":
            _save_classifier(name, *train_mlp(device, args.steps), folder=args.output_dir)
        else:
            train_charlstm(device, args.steps, folder=args.output_dir)


if __name__ == "__main__":
    main()
