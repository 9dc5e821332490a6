"""One vocabulary across the public API (README, "One vocabulary runs through every function"), read off the
signatures with ``inspect``: the model first, named ``model``; images ``x`` second; ``target`` (attribution) or
``labels`` (attacks) right after; and ``layer``, ``output``, ``progress``, ``generator``, ``precision`` and
``return_info`` keyword-only wherever a function takes them; random draws take ``generator``, not ``seed``."""
import dataclasses
import importlib
import inspect

import pytest

MODULES = ["dlviz", "dlviz.attribution", "dlviz.synthesis", "dlviz.adversarial", "dlviz.hooks", "dlviz.train",
           "dlviz.complexity", "dlviz.widgets"]
KEYWORD_ONLY = ("layer", "output", "progress", "generator", "precision", "return_info")
MODEL_NAMES = {"model", "net", "network", "classifier", "module", "m"}
IMAGE_NAMES = {"x", "image", "images", "img", "imgs", "input", "inputs", "batch", "photo", "photos"}
SUBJECTS = ("target", "labels")

# Where a rule does not apply, by function and rule; each with its reason. Keep this short.
ALLOWED = {
    # the layer is what resolve_layer resolves: its subject, not an option
    ("resolve_layer", "keyword-only layer"),
    # the explorers' labels are captions under the images, not the classes to explain or to attack
    ("feature_explorer", "target/labels after x"),
    # an explorer redraws on every slider move: a seed makes each redraw the same, a generator would be used up
    ("dream_explorer", "generator, not seed"),
}


def public_callables():
    """(qualified name, object) for every callable in the modules' ``__all__``, each object once; dataclasses (records
    such as History or LBFGSInfo, whose fields are not arguments) and exceptions are left out."""
    seen, found = set(), []
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if not callable(obj) or inspect.ismodule(obj) or id(obj) in seen:
                continue
            if dataclasses.is_dataclass(obj) or (inspect.isclass(obj) and issubclass(obj, BaseException)):
                continue
            seen.add(id(obj))
            found.append((f"{module_name}.{name}", obj))
    return found


def _takes_model(param: inspect.Parameter) -> bool:
    return param.name in MODEL_NAMES or "Module" in str(param.annotation)


def _takes_images(param: inspect.Parameter) -> bool:
    return param.name in IMAGE_NAMES or "Tensor" in str(param.annotation)


def violations(name: str, func) -> list[str]:
    """What in ``func``'s signature breaks the vocabulary, as ``"<rule>: <detail>"``; [] when nothing does."""
    short = name.rsplit(".", 1)[-1]
    params = list(inspect.signature(func).parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    found = []

    def report(rule, detail):
        if (short, rule) not in ALLOWED:
            found.append(f"{rule}: {detail}")

    takes_model = bool(positional) and _takes_model(positional[0])
    if takes_model and positional[0].name != "model":
        report("model first", f"the model is called {positional[0].name!r}, not 'model'")
    takes_x = takes_model and len(positional) > 1 and _takes_images(positional[1])
    if takes_x and positional[1].name != "x":
        report("x second", f"the images are called {positional[1].name!r}, not 'x'")
    if takes_model:
        expected = 2 if takes_x else 1
        for subject in SUBJECTS:
            if subject not in {p.name for p in params}:
                continue
            where = next(i for i, p in enumerate(params) if p.name == subject)
            if where != expected or params[where].kind != params[where].POSITIONAL_OR_KEYWORD:
                report("target/labels after x", f"{subject!r} is parameter {where} ({params[where].kind.description}),"
                                                f" expected positional parameter {expected}")
    for p in params:
        if p.name in KEYWORD_ONLY and p.kind != p.KEYWORD_ONLY:
            report(f"keyword-only {p.name}", f"{p.name!r} is {p.kind.description}, not keyword-only")
    if "seed" in {p.name for p in params}:
        report("generator, not seed", "random draws take generator=, a torch.Generator, not seed=")
    return found


FUNCTIONS = public_callables()


def test_the_walk_sees_the_toolkit():
    names = {name.rsplit(".", 1)[-1] for name, _ in FUNCTIONS}
    assert {"grad_cam", "deconvnet", "top_activations", "receptive_field", "deepdream", "invert", "fit", "evaluate",
            "pgd", "lbfgs_attack", "feature_explorer", "capture", "multiply_adds"} <= names


@pytest.mark.parametrize("name, func", FUNCTIONS, ids=[name for name, _ in FUNCTIONS])
def test_signature_speaks_the_vocabulary(name, func):
    assert violations(name, func) == []


def test_every_allowance_is_still_needed():
    """An allowance that no function needs any more is dropped, so the list stays the short list of exceptions."""
    needed = set()
    for name, func in FUNCTIONS:
        short = name.rsplit(".", 1)[-1]
        for rule in {rule for s, rule in ALLOWED if s == short}:
            ALLOWED.discard((short, rule))
            try:
                if any(v.startswith(rule + ":") for v in violations(name, func)):
                    needed.add((short, rule))
            finally:
                ALLOWED.add((short, rule))
    assert ALLOWED == needed


def test_the_rules_catch_drift():
    """The checker itself: a positional layer (grad_cam before the vocabulary), a model called net, images called
    images, a target out of place and a seed are each reported."""
    def grad_cam(model, x, target, layer, *, upsample=True, output=None):
        pass

    def saliency(net, images, target, *, output=None):
        pass

    def occlusion(model, x, *, window, target=0, progress=True, seed=0):
        pass

    assert violations("dlviz.grad_cam", grad_cam) == ["keyword-only layer: 'layer' is positional or keyword, "
                                                      "not keyword-only"]
    assert [v.split(":")[0] for v in violations("dlviz.saliency", saliency)] == ["model first", "x second"]
    assert [v.split(":")[0] for v in violations("dlviz.occlusion", occlusion)] == ["target/labels after x",
                                                                                   "generator, not seed"]
