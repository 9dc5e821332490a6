"""Remake tests/data/torchattacks_reference.pt: torchattacks' FGSM and PGD images for a fixed tiny model and images.

The course and the tests share one environment, and torchattacks cannot be in it (it pins requests~=2.25, which
JupyterLab's server cannot use). So tests/test_adversarial.py compares dlviz's attacks with torchattacks' outputs
stored by this script. Run it in any environment that has torchattacks (and dlviz importable), from the repository
root:

    python -m venv /tmp/ta && /tmp/ta/bin/pip install -e . torchattacks
    /tmp/ta/bin/python tools/make_reference_outputs.py

The file holds the model's weights, the images, the labels and every attack's output, so the comparison does not
depend on how a later PyTorch initializes layers or draws random numbers. Each case is (name, attack, arguments):
the test rebuilds the same call with dlviz and asserts bit-identical images.
"""
import pathlib
import sys

import torch
from torch import nn

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "torchattacks_reference.pt"


def small_cnn(seed: int = 0) -> nn.Sequential:
    """The tests' small classifier of (N, 1, 12, 12) images, with dropout and batch norm so that eval mode matters.
    Must stay the same architecture as ``small_cnn`` in tests/test_adversarial.py (the state dict is loaded into it)."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 6, 3), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.3), nn.Linear(6 * 5 * 5, 10),
    )
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.1, 0.1)
        model[1].running_var.uniform_(0.5, 1.5)
    return model


# (name, attack, keyword arguments, targeted, seed for random_start or None)
CASES = [
    *[(f"fgsm_eps{i}", "FGSM", {"eps": eps}, False, None) for i, eps in enumerate([0.0, 2 / 255, 8 / 255, 0.3])],
    ("fgsm_targeted", "FGSM", {"eps": 0.1}, True, None),
    *[(f"pgd_{i}", "PGD", {"eps": eps, "alpha": alpha, "steps": steps, "random_start": False}, False, None)
      for i, (eps, alpha, steps) in enumerate([(8 / 255, 2 / 255, 10), (0.1, 0.01, 7), (0.3, 0.05, 3)])],
    ("pgd_targeted", "PGD", {"eps": 0.2, "alpha": 0.02, "steps": 10, "random_start": False}, True, None),
    ("pgd_random_start", "PGD", {"eps": 0.1, "alpha": 0.01, "steps": 5, "random_start": True}, False, 5),
]


def main() -> None:
    import torchattacks

    torch.set_num_threads(1)
    model = small_cnn().eval()
    torch.manual_seed(1)
    x = torch.rand(16, 1, 12, 12)
    labels = torch.randint(0, 10, (16,))
    targets = (labels + 3) % 10
    outputs = {}
    for name, attack_name, kwargs, targeted, seed in CASES:
        attack = getattr(torchattacks, attack_name)(model, **kwargs)
        if targeted:
            attack.set_mode_targeted_by_label(quiet=True)
        if seed is not None:
            torch.manual_seed(seed)
        outputs[name] = attack(x, targets if targeted else labels).clone()
    reference = {
        "state_dict": {k: v.clone() for k, v in model.state_dict().items()},
        "x": x, "labels": labels, "targets": targets,
        "cases": [{"name": n, "attack": a, "kwargs": k, "targeted": t, "seed": s} for n, a, k, t, s in CASES],
        "outputs": outputs,
        "made_with": {"torchattacks": str(torchattacks.__version__), "torch": str(torch.__version__),
                      "python": sys.version.split()[0]},
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    torch.save(reference, OUT)
    print(f"wrote {OUT.relative_to(ROOT)} ({OUT.stat().st_size / 1024:.0f} KB): {len(CASES)} cases, "
          f"torchattacks {torchattacks.__version__}, torch {torch.__version__}")


if __name__ == "__main__":
    main()
