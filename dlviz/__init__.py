"""dlviz: the deep-learning course's toolkit, and tools that show what a trained PyTorch classifier sees.

Nothing here touches the network at import time; datasets and weights are resolved when asked for. Every tool takes
the model first and images ``x`` second (float, in [0, 1]); see the API reference for the shared vocabulary.

The package has three wings, with imports pointing only down: a private core (``_model``, ``_precision``,
``_progress``, ``_validate``, ``_fetch``); the tools by family (``hooks``, ``attribution``, ``synthesis``,
``adversarial``, ``models``, ``train``, ``data``, ``plot``, ``complexity``, ``widgets``); and ``dlviz.course``, which
only the notebooks import and this module never does.
"""
from . import adversarial, attribution, complexity, data, hooks, models, plot, synthesis, train
from .adversarial import fgsm, fooling_images, lbfgs_attack, pgd
from .attribution import (deconvnet, grad_cam, guided_backprop, integrated_gradients, occlusion, receptive_field,
                          saliency, smoothgrad, top_activations)
from .complexity import count_parameters, multiply_adds
from .hooks import activations, capture
from .models import normalized
from .synthesis import (class_visualization, deepdream, feature_visualization, invert, style_transfer,
                        texture_synthesis)
from .train import History, device, evaluate, fit, seed

__version__ = "0.1.0"

__all__ = [
    # modules
    "adversarial", "attribution", "complexity", "data", "hooks", "models", "plot", "synthesis", "train",
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
