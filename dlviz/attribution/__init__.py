"""Attribution: which pixels, or which training images, a network's answer depends on.

One file per method, named after it; each function takes the model first and images ``x`` second and returns
a tensor with Captum's meaning (same signs, same shapes) where Captum has the same method.
"""
from .grad_cam import grad_cam
from .integrated_gradients import integrated_gradients
from .occlusion import occlusion
from .receptive_field import receptive_field
from .saliency import deconvnet, guided_backprop, saliency
from .smoothgrad import smoothgrad
from .top_activations import top_activations

__all__ = ["saliency", "guided_backprop", "deconvnet", "integrated_gradients", "smoothgrad", "grad_cam", "occlusion",
           "top_activations", "receptive_field"]
