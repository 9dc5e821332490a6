"""Adversarial and fooling images: small changes that flip a classifier's answer (Szegedy et al. 2014; Goodfellow
et al. 2015; Madry et al. 2018), and images no human would recognize that it classifies with confidence (Nguyen et
al. 2015)."""
from .attacks import LBFGSInfo, fgsm, lbfgs_attack, pgd
from .fooling import FoolingInfo, fooling_images

__all__ = ["fgsm", "pgd", "lbfgs_attack", "LBFGSInfo", "fooling_images", "FoolingInfo"]
