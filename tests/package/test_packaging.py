"""The set-up files agree with each other: pyproject, conda's environment.yml, Binder, the constraints, CI and
README."""
import ast
import email.parser
import json
import os
import pathlib
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# conda-forge names the CPU build of PyTorch differently
CONDA_NAMES = {"pytorch-cpu": "torch"}


def name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def runtime() -> set[str]:
    return {name(r) for r in PYPROJECT["project"]["dependencies"]}


def extra(which: str) -> set[str]:
    """The packages an extra installs, with the extras it names of dlviz itself (``dlviz[course]``) expanded."""
    names = set()
    for requirement in PYPROJECT["project"]["optional-dependencies"][which]:
        if name(requirement) == "dlviz":
            for other in requirement.split("[", 1)[1].split("]", 1)[0].split(","):
                names |= extra(other.strip())
        else:
            names.add(name(requirement))
    return names


def conda_packages() -> set[str]:
    names = set()
    dependencies = (ROOT / "environment.yml").read_text().split("\ndependencies:\n", 1)[1]
    for line in dependencies.splitlines():
        match = re.match(r"^  - ([A-Za-z0-9_.-]+)", line)
        if match and match.group(1) not in ("python", "pip"):
            names.add(CONDA_NAMES.get(name(match.group(1)), name(match.group(1))))
    return names


def test_conda_environment_names_the_runtime_and_course_packages():
    assert conda_packages() == runtime() | extra("course") | {"nbval"}
    assert "-e ." in (ROOT / "environment.yml").read_text()


def test_binder_names_the_runtime_and_course_packages_cpu_only():
    text = (ROOT / "binder" / "requirements.txt").read_text()
    names = {name(line) for line in text.splitlines() if line.strip() and not line.startswith(("#", "-"))}
    assert names == runtime() | extra("course")
    assert "download.pytorch.org/whl/cpu" in text
    assert "pip install --no-deps -e ." in (ROOT / "binder" / "postBuild").read_text()


def pins(path: pathlib.Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            package, version = line.split("==", 1)
            found[name(package)] = version.strip()
    return found


CONSTRAINTS = ROOT / "constraints" / "all.txt"


def test_one_environment_for_the_course_and_the_tests():
    """The test extra is the course plus what tests it, and nothing in it holds JupyterLab back: torchattacks (whose
    requests~=2.25 pin JupyterLab's server cannot use) is compared through stored outputs, not installed."""
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert "dlviz[course]" in extras["test"]
    assert {"jupyterlab", "ipykernel", "captum"} <= extra("course")
    assert {"pytest", "pytest-xdist", "nbval", "sphinx", "playwright"} <= extra("test")
    assert "torchattacks" not in extra("test") | extra("course")
    assert sorted(path.name for path in (ROOT / "constraints").iterdir()) == ["all.txt"]
    assert (ROOT / "tests" / "data" / "torchattacks_reference.pt").is_file()


def test_constraints_pin_every_dependency_of_the_one_environment():
    pinned = pins(CONSTRAINTS)
    assert runtime() | extra("course") | extra("test") <= set(pinned)
    assert "torchattacks" not in pinned
    # JupyterLab's server needs a requests that torchattacks' pin excluded
    assert tuple(int(part) for part in pinned["requests"].split(".")[:2]) >= (2, 31)


def readme_commands() -> tuple[str, str]:
    """The README's two commands: set up and open the course; set up and run every test."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme.split("## The course", 1)[0], re.S)
    assert len(blocks) == 2, "the README's top part gives exactly two commands"
    return blocks[0].strip(), blocks[1].strip()


def test_readme_commands_share_one_environment_and_one_constraints_file():
    course, test = readme_commands()
    for command in (course, test):
        assert command.startswith("python3 -m venv .venv && .venv/bin/pip install -c constraints/all.txt -e "), command
    assert 'jupyter lab' in course and 'pip install -c constraints/all.txt -e ".[course]"' in course
    assert 'pip install -c constraints/all.txt -e ".[test]"' in test


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- test-command -->\s*```bash\n(.*?)\n```", readme, re.S)
    assert block, "README must give the test command in a bash block after <!-- test-command -->"
    command = block.group(1).strip()
    assert command == readme_commands()[1]
    assert "pytest -n 2 --dist loadfile" in command and "-c constraints/all.txt" in command
    printed = subprocess.run(["bash", ".ci/run", "--print-command"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
    assert printed == command


def test_pytest_collects_every_notebook():
    assert "notebooks" in PYPROJECT["tool"]["pytest"]["ini_options"]["testpaths"]
    assert "--nbval " in PYPROJECT["tool"]["pytest"]["ini_options"]["addopts"] + " "


def test_notebooks_are_checked_by_their_asserts_and_their_machine_independent_outputs():
    """nbval runs every cell (the lessons' asserts) and compares only the outputs tagged as the same on every machine
    and seed (tools/mark_stable_outputs.py); CI runs the notebooks a second time on another machine's arithmetic and
    other seeds, asserts only."""
    assert "--nbval-lax" in PYPROJECT["tool"]["pytest"]["ini_options"]["addopts"].split()
    lane = "tools/run_notebooks.py --check --isa AVX2 --precision fp32 --seed-offset 3"
    assert lane in readme_commands()[1]
    tagged = sum("nbval-check-output" in cell.get("metadata", {}).get("tags", [])
                 for path in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")
                 for cell in json.loads(path.read_text())["cells"])
    assert tagged > 50, "the machine-independent outputs should be tagged for comparison"


def test_conda_pip_section_is_a_valid_requirements_list():
    """conda hands the pip: list to pip as a requirements file, where options such as --no-deps are rejected."""
    text = (ROOT / "environment.yml").read_text()
    pip_lines = [line.strip()[2:] for line in text.split("  - pip:\n", 1)[1].splitlines() if line.strip()]
    for line in pip_lines:
        assert not line.startswith("--"), f"pip option {line!r} is not allowed in a requirements list"


def test_binder_uses_the_course_constraints_and_python():
    assert "-c ../constraints/all.txt" in (ROOT / "binder" / "requirements.txt").read_text()
    runtime_python = (ROOT / "binder" / "runtime.txt").read_text().strip()
    minimum = PYPROJECT["project"]["requires-python"].removeprefix(">=")
    assert runtime_python == f"python-{minimum}"
    assert f"python={minimum}" in (ROOT / "environment.yml").read_text()
    assert f"Python {minimum}+" in (ROOT / "README.md").read_text()


def test_top_level_names_are_the_documented_tools():
    import dlviz
    from dlviz import adversarial, attribution, hooks
    from dlviz.synthesis import dream
    from dlviz.synthesis import style
    assert dlviz.fgsm is adversarial.fgsm and dlviz.pgd is adversarial.pgd
    assert dlviz.fooling_images is adversarial.fooling_images
    assert dlviz.deepdream is dream.deepdream and dlviz.style_transfer is style.style_transfer
    for tool in ("saliency", "guided_backprop", "deconvnet", "occlusion", "top_activations"):
        assert getattr(dlviz, tool) is getattr(attribution, tool)
    assert dlviz.activations is hooks.activations and dlviz.capture is hooks.capture
    assert set(dlviz.__all__) <= set(dir(dlviz))


# --- the distribution: what pip builds from the sdist, and what the sdist lets anyone check ----------------------

SDIST_TESTS = ["tests/course/test_engine.py"]  # fast, and needs no data: the sdist's own tests must run from the sdist


def build_backend(hook: str, source: pathlib.Path, out: pathlib.Path) -> pathlib.Path:
    """Runs setuptools' PEP 517 ``hook`` (build_sdist or build_wheel) in ``source``, offline, as pip would without
    build isolation; returns the built file."""
    code = f"import sys, setuptools.build_meta as backend; print(backend.{hook}(sys.argv[1]))"
    done = subprocess.run([sys.executable, "-c", code, str(out)], cwd=source, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    return out / done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def sdist(tmp_path_factory) -> pathlib.Path:
    """The sdist built from this checkout, unpacked: the folder with its pyproject.toml."""
    out = tmp_path_factory.mktemp("sdist")
    archive = build_backend("build_sdist", ROOT, out)
    with tarfile.open(archive) as tar:
        tar.extractall(out, filter="data")
    (top,) = [path for path in out.iterdir() if path.is_dir()]
    return top


@pytest.fixture(scope="module")
def wheel(sdist, tmp_path_factory) -> zipfile.ZipFile:
    """The wheel built from the unpacked sdist, as ``pip install dlviz-*.tar.gz`` builds it."""
    path = build_backend("build_wheel", sdist, tmp_path_factory.mktemp("wheel"))
    with zipfile.ZipFile(path) as archive:
        yield archive


def wheel_metadata(wheel: zipfile.ZipFile) -> email.message.Message:
    (name,) = [name for name in wheel.namelist() if name.endswith(".dist-info/METADATA")]
    return email.parser.Parser().parsestr(wheel.read(name).decode())


def test_sdist_has_tests_licence_and_package_data(sdist):
    files = {path.relative_to(sdist).as_posix() for path in sdist.rglob("*") if path.is_file()}
    expected = {"LICENSE", "README.md", "pyproject.toml", "MANIFEST.in", "conftest.py", "dlviz/py.typed",
                "tests/conftest.py", "tests/course/test_engine.py", "constraints/all.txt",
                "tests/data/torchattacks_reference.pt",
                "notebooks/nbval_sanitize.cfg", "docs/conf.py", "docs/index.rst", "docs/requirements.txt"}
    assert expected <= files, expected - files
    weights = {path for path in files if path.startswith("dlviz/models/weights/")}
    assert weights == {f"dlviz/models/weights/{p.name}" for p in (ROOT / "dlviz" / "models" / "weights").iterdir()
                       if p.is_file()}
    # the course data is downloaded, and no other project's weights travel: only the README of datasets/
    assert not [path for path in files if path.startswith("datasets/") and path != "datasets/README.md"]
    assert not [path for path in files if path.endswith((".pth", ".pt", ".ckpt"))
                and path not in weights | {"tests/data/torchattacks_reference.pt"}]
    assert not [path for path in files if "__pycache__" in path or path.endswith(".ipynb")]


@pytest.mark.slow
def test_sdist_runs_its_own_tests(sdist):
    """The sdist's tests, on the sdist's dlviz (first on the path, ahead of any installed dlviz)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(sdist), os.environ.get("PYTHONPATH")]))}
    where = subprocess.run([sys.executable, "-c", "import dlviz; print(dlviz.__file__)"], cwd=sdist, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert pathlib.Path(where).is_relative_to(sdist), where
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-o", "addopts=", "-p", "no:cacheprovider",
                          *SDIST_TESTS], cwd=sdist, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert re.search(r"\b\d+ passed\b", run.stdout), run.stdout[-2000:]


def test_wheel_metadata_licence_classifiers_urls_and_version(wheel):
    import dlviz

    metadata = wheel_metadata(wheel)
    assert metadata["Version"] == dlviz.__version__
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]
    classifiers = set(metadata.get_all("Classifier"))
    assert {f"Programming Language :: Python :: 3.{minor}" for minor in (11, 12, 13)} <= classifiers
    assert {"Operating System :: OS Independent", "Framework :: Jupyter", "Intended Audience :: Education",
            "Intended Audience :: Science/Research",
            "Topic :: Scientific/Engineering :: Artificial Intelligence"} <= classifiers
    assert not [c for c in classifiers if c.startswith("License ::")], ("the SPDX expression replaces licence "
                                                                        "classifiers")
    urls = dict(url.split(", ", 1) for url in metadata.get_all("Project-URL"))
    assert urls == {"Homepage": "https://github.com/dlviz/dlviz", "Documentation": "https://dlviz.readthedocs.io",
                    "Source": "https://github.com/dlviz/dlviz", "Issues": "https://github.com/dlviz/dlviz/issues"}
    assert metadata["Requires-Python"] == PYPROJECT["project"]["requires-python"]


def test_wheel_ships_types_marker_weights_and_licence(wheel):
    names = set(wheel.namelist())
    assert "dlviz/py.typed" in names
    assert {f"dlviz/models/weights/{p.name}" for p in (ROOT / "dlviz" / "models" / "weights").glob("*.pt")} <= names
    assert [name for name in names if name.endswith(".dist-info/licenses/LICENSE")]
    assert not [name for name in names if name.startswith(("tests/", "docs/", "notebooks/"))]


def test_version_is_written_once():
    """pyproject reads the version from dlviz.__version__; no other file states it."""
    import dlviz

    assert "version" not in PYPROJECT["project"] and "version" in PYPROJECT["project"]["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "dlviz.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", dlviz.__version__)


def test_licence_is_mit_and_declared_the_pep_639_way():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Copyright (c) 2026 the dlviz authors" in text
    assert PYPROJECT["project"]["license"] == "MIT" and PYPROJECT["project"]["license-files"] == ["LICENSE"]
    # setuptools reads PEP 639's fields from 77 on
    assert any(re.fullmatch(r"setuptools>=(\d+)", r) and int(r.split(">=")[1]) >= 77
               for r in PYPROJECT["build-system"]["requires"])


def imported_distributions() -> set[str]:
    """The third-party packages dlviz's modules import, as distribution names."""
    imports = set()
    for path in (ROOT / "dlviz").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imports |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imports.add(node.module.split(".")[0])
    third_party = imports - set(sys.stdlib_module_names) - {"dlviz", "__future__"}
    distributions = {"PIL": "pillow", "skimage": "scikit-image", "IPython": "ipython"}
    return {distributions.get(module, module).lower() for module in third_party}


def test_every_imported_package_is_a_dependency():
    imported = imported_distributions()
    assert {"torch", "numpy", "scipy"} <= imported
    assert imported <= runtime(), f"imported but not declared: {sorted(imported - runtime())}"


def test_read_the_docs_builds_the_reference_with_cpu_torch_and_the_docs_extra():
    config = (ROOT / ".readthedocs.yaml").read_text()
    for line in ("version: 2", "os: ubuntu-24.04", 'python: "3.12"', "configuration: docs/conf.py",
                 "fail_on_warning: true", "requirements: docs/requirements.txt", "- docs"):
        assert line in config, line
    assert "sphinx" in {name(r) for r in PYPROJECT["project"]["optional-dependencies"]["docs"]}
    assert "sphinx" in extra("test")
    requirements = (ROOT / "docs" / "requirements.txt").read_text()
    assert "download.pytorch.org/whl/cpu" in requirements and "-c ../constraints/all.txt" in requirements
