"""The package's floor plan: three wings with imports pointing only down (tools/import_graph.py reads them)."""
import importlib.util
import pathlib

import pytest

TOOL = pathlib.Path(__file__).resolve().parents[2] / "tools" / "import_graph.py"
spec = importlib.util.spec_from_file_location("import_graph", TOOL)
import_graph = importlib.util.module_from_spec(spec)
spec.loader.exec_module(import_graph)


@pytest.fixture(scope="module")
def graph():
    return import_graph.edges()


def test_no_import_circles(graph):
    assert import_graph.circles(graph) == []


def test_private_modules_import_only_private_ones_and_the_course_is_imported_only_by_itself(graph):
    assert import_graph.rule_breaks(graph) == []


def test_the_toolkits_face_does_not_load_the_course():
    import subprocess
    import sys
    code = "import sys, dlviz; print(sorted(m for m in sys.modules if m.startswith('dlviz.course')))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


def test_the_checks_catch_what_they_are_for(tmp_path):
    # a circle, a private module importing a public one, and the toolkit importing the course: all three are seen
    package = tmp_path / "pkg"
    (package / "course").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "_core.py").write_text("from . import tool\n")
    (package / "tool.py").write_text("from ._core import x\nfrom .course import lesson\n")
    (package / "course" / "__init__.py").write_text("")
    (package / "course" / "lesson.py").write_text("y = 1\n")
    graph = import_graph.edges(package)
    assert import_graph.circles(graph) == [["pkg._core", "pkg.tool"]]
    assert import_graph.rule_breaks(graph) == ["private pkg._core imports public pkg.tool",
                                               "pkg.tool imports the course module pkg.course.lesson"]


def test_a_call_into_grad_cam_enters_few_modules(graph):
    # following `model` through grad_cam: the method, the core it calls, hooks; nothing from other families
    entered = import_graph.trace(graph, "dlviz.attribution.grad_cam")
    assert all(name.startswith(("dlviz._", "dlviz.hooks", "dlviz.attribution.grad_cam")) for name in entered), entered
