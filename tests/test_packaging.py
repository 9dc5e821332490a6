"""The set-up files agree with each other: pyproject, conda's environment.yml, Binder, the constraints, CI and README."""
import pathlib
import re
import subprocess
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# conda-forge names the CPU build of PyTorch differently
CONDA_NAMES = {"pytorch-cpu": "torch"}


def name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def runtime() -> set[str]:
    return {name(r) for r in PYPROJECT["project"]["dependencies"]}


def conda_packages() -> set[str]:
    names = set()
    dependencies = (ROOT / "environment.yml").read_text().split("\ndependencies:\n", 1)[1]
    for line in dependencies.splitlines():
        match = re.match(r"^  - ([A-Za-z0-9_.-]+)", line)
        if match and match.group(1) not in ("python", "pip"):
            names.add(CONDA_NAMES.get(name(match.group(1)), name(match.group(1))))
    return names


def test_conda_environment_names_the_runtime_and_notebook_packages():
    notebooks = {name(r) for r in PYPROJECT["project"]["optional-dependencies"]["notebooks"]}
    assert conda_packages() == runtime() | notebooks | {"nbval"}
    assert "-e ." in (ROOT / "environment.yml").read_text()


def test_binder_names_the_runtime_and_notebook_packages_cpu_only():
    text = (ROOT / "binder" / "requirements.txt").read_text()
    names = {name(line) for line in text.splitlines() if line.strip() and not line.startswith(("#", "-"))}
    notebooks = {name(r) for r in PYPROJECT["project"]["optional-dependencies"]["notebooks"]}
    assert names == runtime() | notebooks
    assert "download.pytorch.org/whl/cpu" in text
    assert "pip install --no-deps -e ." in (ROOT / "binder" / "postBuild").read_text()


def pins(path: pathlib.Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            package, version = line.split("==", 1)
            found[name(package)] = version.strip()
    return found


def test_constraints_pin_every_direct_dependency():
    extras = PYPROJECT["project"]["optional-dependencies"]
    course, test = pins(ROOT / "constraints" / "course.txt"), pins(ROOT / "constraints" / "test.txt")
    assert runtime() | {name(r) for r in extras["notebooks"]} <= set(course)
    assert runtime() | {name(r) for r in extras["test"]} <= set(test)
    for package in runtime():  # both environments run the course on the same versions
        assert course[package] == test[package], package


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- test-command -->\s*```bash\n(.*?)\n```", readme, re.S)
    assert block, "README must give the test command in a bash block after <!-- test-command -->"
    command = block.group(1).strip()
    assert "pytest" in command and "-c constraints/test.txt" in command
    printed = subprocess.run(["bash", ".ci/run", "--print-command"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
    assert printed == command


def test_pytest_collects_every_notebook():
    assert "notebooks" in PYPROJECT["tool"]["pytest"]["ini_options"]["testpaths"]
    assert "--nbval " in PYPROJECT["tool"]["pytest"]["ini_options"]["addopts"] + " "


def test_conda_pip_section_is_a_valid_requirements_list():
    """conda hands the pip: list to pip as a requirements file, where options such as --no-deps are rejected."""
    text = (ROOT / "environment.yml").read_text()
    pip_lines = [line.strip()[2:] for line in text.split("  - pip:\n", 1)[1].splitlines() if line.strip()]
    for line in pip_lines:
        assert not line.startswith("--"), f"pip option {line!r} is not allowed in a requirements list"


def test_binder_uses_the_course_constraints_and_python():
    assert "-c ../constraints/course.txt" in (ROOT / "binder" / "requirements.txt").read_text()
    runtime_python = (ROOT / "binder" / "runtime.txt").read_text().strip()
    minimum = PYPROJECT["project"]["requires-python"].removeprefix(">=")
    assert runtime_python == f"python-{minimum}"
    assert f"python={minimum}" in (ROOT / "environment.yml").read_text()
    assert f"Python {minimum}+" in (ROOT / "README.md").read_text()


def test_top_level_names_are_the_documented_tools():
    import dlviz
    from dlviz import adversarial, attribution, dream, hooks, style
    assert dlviz.fgsm is adversarial.fgsm and dlviz.pgd is adversarial.pgd
    assert dlviz.fooling_images is adversarial.fooling_images
    assert dlviz.deepdream is dream.deepdream and dlviz.style_transfer is style.style_transfer
    for tool in ("saliency", "guided_backprop", "deconvnet", "occlusion", "top_activations"):
        assert getattr(dlviz, tool) is getattr(attribution, tool)
    assert dlviz.activations is hooks.activations and dlviz.capture is hooks.capture
    assert set(dlviz.__all__) <= set(dir(dlviz))
