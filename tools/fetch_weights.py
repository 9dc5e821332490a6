#!/usr/bin/env python3
"""Download every ImageNet weight the course uses into torch's cache, printing names and sizes.

Usage (from the course's folder, in its environment; needs internet once):
    python tools/fetch_weights.py              # AlexNet 233 MB, GoogLeNet 50 MB, VGG-19 548 MB
    python tools/fetch_weights.py alexnet      # only some of them

The files go to $TORCH_HOME/hub/checkpoints (by default ~/.cache/torch/hub/checkpoints), where torchvision and
every pretrained section of the notebooks (``dlviz.course.imagenet.enabled``) look for them. Offline it fails within
seconds and says why.
"""
import sys

from dlviz.course.imagenet import main

if __name__ == "__main__":
    sys.exit(main())
