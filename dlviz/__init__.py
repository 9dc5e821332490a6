"""dlviz: the deep-learning course's toolkit, and tools that show what a trained PyTorch classifier sees.

Nothing here touches the network at import time; datasets and weights are resolved when asked for.
"""
from . import data, plot, train
from .train import device, evaluate, fit, seed, History

__version__ = "0.1.0"

__all__ = ["data", "plot", "train", "device", "evaluate", "fit", "seed", "History", "__version__"]
from . import text, zoo
from . import attribution, hooks
from .hooks import activations
from .attribution import deconvnet, guided_backprop, occlusion, saliency, top_activations
__all__ += ["attribution", "hooks", "activations", "deconvnet", "guided_backprop", "occlusion", "saliency",
            "top_activations"]
