"""What only the course's notebooks use: exercises and their checks, the lessons' explorers, the ImageNet switch, a
tiny autograd engine, low-precision arithmetic, character-level text, a small GAN and image augmentation.

The toolkit (``import dlviz``) never imports this package; the notebooks do (``import dlviz.course``).
"""
from . import augment, engine, exercises, explorers, generate, imagenet, lowprec, text

__all__ = ["augment", "engine", "exercises", "explorers", "generate", "imagenet", "lowprec", "text"]
