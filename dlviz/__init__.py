"""dlviz: the deep-learning course's toolkit, and tools that show what a trained PyTorch classifier sees.

Nothing here touches the network at import time; datasets and weights are resolved when asked for. Every tool takes
the model first and images ``x`` second (float, in [0, 1]); see the API reference for the shared vocabulary.
"""
from . import (adversarial, attribution, augment, cam, complexity, data, dream, engine, exercises, generate, hooks,
               integrated, lowprec, plot, smooth, style, text, train, wrappers, zoo)
from .adversarial import fgsm, fooling_images, lbfgs_attack, pgd
from .attribution import deconvnet, guided_backprop, occlusion, saliency, top_activations
from .cam import grad_cam
from .complexity import count_parameters, multiply_adds
from .dream import class_visualization, deepdream, feature_visualization
from .hooks import activations, capture
from .integrated import integrated_gradients
from .invert import invert  # dlviz.invert is the function; "from dlviz.invert import InversionInfo" still works
from .receptive import receptive_field
from .smooth import smoothgrad
from .style import style_transfer, texture_synthesis
from .train import History, device, evaluate, fit, seed
from .wrappers import normalized

__version__ = "0.1.0"

__all__ = [
    # modules
    "adversarial", "attribution", "augment", "cam", "complexity", "data", "dream", "engine", "exercises", "generate",
    "hooks", "integrated", "lowprec", "plot", "smooth", "style", "text", "train", "wrappers", "zoo",
    # training
    "History", "device", "evaluate", "fit", "seed",
    # any model
    "normalized", "count_parameters", "multiply_adds",
    # seeing inside a network
    "activations", "capture", "receptive_field", "saliency", "guided_backprop", "deconvnet", "integrated_gradients",
    "smoothgrad", "grad_cam", "occlusion", "top_activations", "invert",
    # making images
    "deepdream", "class_visualization", "feature_visualization", "fgsm", "pgd", "lbfgs_attack", "fooling_images",
    "style_transfer", "texture_synthesis",
    "__version__",
]
