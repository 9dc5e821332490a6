"""Sphinx configuration for dlviz's API reference, built from the docstrings (Google style, read by napoleon).

Build: ``sphinx-build -W --keep-going -b html docs docs/_build/html`` (tests/test_docs.py runs the same, so a
docstring that Sphinx warns about fails the test suite).
"""
import pathlib
import sys

import matplotlib

# dlviz.plot imports pyplot: no display is needed to read its docstrings
matplotlib.use("Agg")
# the dlviz beside this folder, also when the build runs from a source tree that is not installed
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import dlviz  # noqa: E402
from sphinx.ext.autodoc import ModuleDocumenter  # noqa: E402

# the modules with a page of their own in api/
PAGES = {f"dlviz.{page.stem}" for page in (pathlib.Path(__file__).resolve().parent / "api").glob("*.rst")}

project = "dlviz"
author = "the dlviz authors"
copyright = "2026, the dlviz authors"
release = dlviz.__version__
version = ".".join(release.split(".")[:2])

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode"]
exclude_patterns = ["_build"]

# Google-style "Args:" / "Returns:" / "Example:" sections; numpy-style is not used in dlviz
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

autodoc_default_options = {"members": True, "member-order": "bysource"}
# an undocumented override (forward, extra_repr) would otherwise show nn.Module's docstring
autodoc_inherit_docstrings = False
# types are read from the signatures; repeating them in the description would only add noise
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
# functions appear as dlviz.attribution.saliency, the name users also find with help()
add_module_names = True

html_theme = "alabaster"
html_title = f"dlviz {release}"
html_theme_options = {"description": "what a PyTorch classifier sees", "fixed_sidebar": True}


class HomePageModuleDocumenter(ModuleDocumenter):
    """``automodule`` that documents each object once, on its home module's page.

    A package lists what it re-exports in ``__all__`` (``dlviz.attribution`` lists ``grad_cam``); such an object is
    documented only on its home module's page (``dlviz.attribution.grad_cam``) when that module has one.
    """

    def filter_members(self, members, want_all):
        kept = super().filter_members(members, want_all)
        return [member for member in kept if not self._documented_elsewhere(member[1])]

    def _documented_elsewhere(self, obj) -> bool:
        home = getattr(obj, "__module__", None)
        return home != self.modname and home in PAGES


def setup(app):
    app.add_autodocumenter(HomePageModuleDocumenter, override=True)
