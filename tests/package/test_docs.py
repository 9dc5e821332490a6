"""The API reference: every docstring example runs and gives what it shows, the Sphinx site builds without a single
warning, and every public function and class is in it with an example."""
import dataclasses
import doctest
import importlib
import inspect
import pathlib
import pkgutil
import posixpath
import re
import subprocess
import sys
import time

import matplotlib.pyplot as plt
import pytest

import dlviz

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
# the modules with a page in the reference (docs/api/<name>.rst documents dlviz.<name>)
PAGES = sorted(f"dlviz.{page.stem}" for page in (DOCS / "api").glob("*.rst"))
# every module of the package, private ones and the exercises included: an example anywhere must run
MODULES = sorted(["dlviz"] + [info.name for info in pkgutil.walk_packages(dlviz.__path__, "dlviz.")])
# the docs build runs in a fresh interpreter (imports torch and every dlviz module); seconds on a 2-core CPU
BUILD_SECONDS = 60
EXAMPLE_SECTION = re.compile(r"^\s*Examples?:\s*\n(?:\s*\n)*\s*>>> ", re.M)


def test_every_module_is_found():
    assert {"dlviz.attribution", "dlviz.train", "dlviz.course.exercises.nb01", "dlviz._model"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    """Runs every ``>>>`` example in the module's own docstrings (re-exported objects run in their home module)."""
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = []
    try:
        for test in finder.find(module, name):
            runner.run(test, out=report.append)
    finally:
        plt.close("all")
    results = runner.summarize(verbose=False)
    assert results.failed == 0, "".join(report)


def test_doctests_fail_when_an_example_is_wrong():
    """The runner above reports a wrong example: its checks are not vacuous."""
    def wrong():
        """
        >>> 1 + 1
        3
        """
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in doctest.DocTestFinder().find(wrong, "wrong", globs={}):
        runner.run(test, out=lambda text: None)
    assert runner.summarize(verbose=False).failed == 1


def has_example(obj) -> bool:
    """An "Example:" (or "Examples:") section whose first line is a ``>>>`` doctest, in the docstring of the object
    (for a class: of the class or its ``__init__``)."""
    docs = [inspect.getdoc(obj)]
    if inspect.isclass(obj) and "__init__" in vars(obj):
        docs.append(inspect.getdoc(obj.__init__))
    return any(doc and EXAMPLE_SECTION.search(doc) for doc in docs)


def test_example_section_is_recognized():
    def documented():
        """Adds one.

        Example:
            >>> 1 + 1
            2
        """

    def undocumented():
        """Adds one. Example: call it."""

    assert has_example(documented) and not has_example(undocumented)


def needs_example(obj) -> bool:
    """Functions and classes do; exceptions and the ``return_info`` dataclasses (``IntegratedGradientsInfo``), which
    the example of the function returning them shows, do not."""
    if inspect.isfunction(obj):
        return True
    if not inspect.isclass(obj) or issubclass(obj, BaseException):
        return False
    return not (dataclasses.is_dataclass(obj) and obj.__name__.endswith("Info"))


def public_objects(module) -> dict[str, object]:
    """The functions and classes a module offers that need an example: those in ``__all__``, else the module's own
    public ones."""
    names = getattr(module, "__all__", None)
    if names is None:
        names = [name for name, obj in vars(module).items()
                 if not name.startswith("_") and getattr(obj, "__module__", None) == module.__name__]
    objects = {name: getattr(module, name) for name in names}
    return {name: obj for name, obj in objects.items() if needs_example(obj)}


def test_every_top_level_function_and_class_has_an_example():
    missing = sorted(name for name, obj in public_objects(dlviz).items() if not has_example(obj))
    assert not missing, f"dlviz.{', dlviz.'.join(missing)} have no Example section with a >>> doctest"


@pytest.mark.parametrize("name", PAGES)
def test_every_documented_function_and_class_has_an_example(name):
    """Checked where the reference documents each object: a re-export (``dlviz.models.imagenet.imagenet``) on its
    home's page."""
    module = importlib.import_module(name)
    own = {key: obj for key, obj in public_objects(module).items() if obj.__module__ not in set(PAGES) - {name}}
    missing = sorted(f"{name}.{key}" for key, obj in own.items() if not has_example(obj))
    assert not missing, f"{', '.join(missing)} have no Example section with a >>> doctest"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site built as Read the Docs and CI build it, warnings as errors: (sphinx-build's result, seconds, folder)."""
    out = tmp_path_factory.mktemp("html")
    start = time.perf_counter()
    build = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                            "-d", str(out / ".doctrees"), str(DOCS), str(out)],
                           capture_output=True, text=True, timeout=10 * BUILD_SECONDS)
    return build, time.perf_counter() - start, out


@pytest.mark.slow
def test_docs_build_without_warnings(site):
    build, seconds, out = site
    assert build.returncode == 0, f"sphinx-build -W failed:\n{build.stderr[-6000:]}"
    assert (out / "index.html").is_file() and (out / "api" / "attribution.html").is_file()
    assert seconds < BUILD_SECONDS, f"the docs build took {seconds:.0f} s"


def test_every_module_has_a_page():
    public = {f"dlviz.{name}" for name in dlviz.__all__ if inspect.ismodule(getattr(dlviz, name))}
    assert public <= set(PAGES)
    toctree = (DOCS / "index.rst").read_text()
    for page in PAGES:
        assert f"api/{page.removeprefix('dlviz.')}\n" in toctree, page


def resolve(dotted: str):
    """The object a documented name such as ``dlviz.attribution.saliency`` or ``dlviz.train.History.plot`` is."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            obj = getattr(obj, attribute)
        return obj
    raise ImportError(dotted)


def documented_objects(out: pathlib.Path) -> list:
    """The Python functions and classes in the built site's inventory (objects.inv, which intersphinx reads)."""
    from sphinx.util.inventory import InventoryFile

    with open(out / "objects.inv", "rb") as stream:
        inventory = InventoryFile.load(stream, "", posixpath.join)
    names = [name for kind in ("py:function", "py:class", "py:exception") for name in inventory.get(kind, {})]
    return [resolve(name) for name in names]


def test_every_top_level_function_and_class_is_in_the_reference(site):
    build, _, out = site
    assert (out / "objects.inv").is_file(), build.stderr[-3000:]
    documented = documented_objects(out)
    assert dlviz.saliency in documented and dlviz.fit in documented
    tools = {name: getattr(dlviz, name) for name in dlviz.__all__}
    missing = sorted(name for name, obj in tools.items() if (inspect.isfunction(obj) or inspect.isclass(obj))
                     and not any(obj is entry for entry in documented))
    assert not missing, f"not in the API reference: {missing}"
