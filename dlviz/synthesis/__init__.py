"""Synthesis: images made by gradient descent on the pixels -- DeepDream, class and feature visualization,
inversion of a layer's code, and style transfer."""
from .dream import class_visualization, deepdream, feature_visualization
from .invert import invert
from .style import style_transfer, texture_synthesis

__all__ = ["deepdream", "class_visualization", "feature_visualization", "invert", "style_transfer",
           "texture_synthesis"]
