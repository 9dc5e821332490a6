"""dlviz: the deep-learning course's toolkit, and tools that show what a trained PyTorch classifier sees.

Nothing here touches the network at import time; datasets and weights are resolved when asked for.
"""
from . import adversarial, attribution, data, dream, engine, exercises, hooks, plot, style, text, train, zoo
from .adversarial import fgsm, fooling_images, pgd
from .attribution import deconvnet, guided_backprop, occlusion, saliency, top_activations
from .dream import deepdream
from .hooks import activations, capture
from .style import style_transfer
from .train import History, device, evaluate, fit, seed

__version__ = "0.1.0"

__all__ = [
    # modules
    "adversarial", "attribution", "data", "dream", "engine", "exercises", "hooks", "plot", "style", "text", "train", "zoo",
    # training
    "History", "device", "evaluate", "fit", "seed",
    # seeing inside a network
    "activations", "capture", "saliency", "guided_backprop", "deconvnet", "occlusion", "top_activations",
    # making images
    "deepdream", "fgsm", "pgd", "fooling_images", "style_transfer",
    "__version__",
]
