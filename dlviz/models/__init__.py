"""Models: the course's trained models (:mod:`~dlviz.models.zoo`), torchvision's ImageNet classifiers taking [0, 1]
pixels (:mod:`~dlviz.models.imagenet`), VGG-19 as a feature extractor (:mod:`~dlviz.models.vgg`), and the one wrapper
that puts normalization inside a model (:mod:`~dlviz.models.normalize`)."""
from . import imagenet, normalize, vgg, zoo
from .normalize import Normalized, normalized

__all__ = ["zoo", "imagenet", "vgg", "normalize", "normalized", "Normalized"]
