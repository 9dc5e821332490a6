"""Every public name works from ``dlviz`` as before the package was arranged in wings, and each wing exports its own."""
import importlib

import pytest

import dlviz

FUNCTIONS = ["History", "device", "evaluate", "fit", "seed", "normalized", "count_parameters", "multiply_adds",
             "activations", "capture", "receptive_field", "saliency", "guided_backprop", "deconvnet",
             "integrated_gradients", "smoothgrad", "grad_cam", "occlusion", "top_activations", "invert", "deepdream",
             "class_visualization", "feature_visualization", "fgsm", "pgd", "lbfgs_attack", "fooling_images",
             "style_transfer", "texture_synthesis"]
WINGS = {"attribution": ["saliency", "guided_backprop", "deconvnet", "integrated_gradients", "smoothgrad", "grad_cam",
                         "occlusion", "top_activations", "receptive_field"],
         "synthesis": ["deepdream", "class_visualization", "feature_visualization", "invert", "style_transfer",
                       "texture_synthesis"],
         "adversarial": ["fgsm", "pgd", "lbfgs_attack", "fooling_images"]}


@pytest.mark.parametrize("name", FUNCTIONS)
def test_every_public_name_imports_from_dlviz(name):
    namespace = {}
    exec(f"from dlviz import {name}", namespace)
    assert callable(namespace[name]) and name in dlviz.__all__


@pytest.mark.parametrize("wing, names", WINGS.items())
def test_each_wing_exports_the_same_objects(wing, names):
    module = importlib.import_module(f"dlviz.{wing}")
    assert set(names) <= set(module.__all__)
    assert all(getattr(module, name) is getattr(dlviz, name) for name in names)


def test_all_lists_only_what_exists():
    assert [name for name in dlviz.__all__ if not hasattr(dlviz, name)] == []


@pytest.mark.parametrize("old, new", [("dlviz.cam", "dlviz.attribution.grad_cam"),
                                      ("dlviz.integrated", "dlviz.attribution.integrated_gradients"),
                                      ("dlviz.smooth", "dlviz.attribution.smoothgrad"),
                                      ("dlviz.occlude", "dlviz.attribution.occlusion"),
                                      ("dlviz.top_inputs", "dlviz.attribution.top_activations"),
                                      ("dlviz.receptive", "dlviz.attribution.receptive_field"),
                                      ("dlviz.dream", "dlviz.synthesis.dream"),
                                      ("dlviz.style", "dlviz.synthesis.style"),
                                      ("dlviz.fooling", "dlviz.adversarial.fooling"), ("dlviz.zoo", "dlviz.models.zoo"),
                                      ("dlviz.wrappers", "dlviz.models.normalize"),
                                      ("dlviz.exercises", "dlviz.course.exercises"),
                                      ("dlviz.engine", "dlviz.course.engine")])
def test_moved_modules_live_in_their_wing(old, new):
    # the modules moved (the README lists them); their public names are the same
    importlib.import_module(new)
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(old)
