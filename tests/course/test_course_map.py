"""The course's numbering is consistent everywhere a student meets it: file names, titles, the README's course map,
the welcome notebook's map, and the exercise keys."""
import json
import pathlib
import re

import pytest

import dlviz.course.exercises

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _number_and_name(path: pathlib.Path) -> tuple[str, str]:
    number, name = path.stem.split("_", 1)
    return number, name


def _cells(path: pathlib.Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def test_notebooks_are_numbered_from_00_without_gaps():
    numbers = [int(_number_and_name(path)[0]) for path in NOTEBOOKS]
    assert numbers == list(range(len(numbers))), numbers


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_title_carries_the_file_number(path):
    number, _ = _number_and_name(path)
    title = "".join(_cells(path)[0]["source"]).splitlines()[0]
    assert title.startswith(f"# {number} · "), title


def test_readme_course_map_lists_every_notebook_once_in_order():
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| (\d\d) \| \[(\w+)\]\(notebooks/(\d\d)_(\w+)\.ipynb\) \|"
                      r".*\| ([\d.]+) min \| ([\d.]+) GB \|$",
                      readme, flags=re.M)
    expected = [_number_and_name(path) for path in NOTEBOOKS]
    assert [(number, name) for number, name, *_ in rows] == expected
    assert all(number == linked and name == linked_name for number, name, linked, linked_name, *_ in rows)
    # every notebook stays within the course's budget of 4 minutes
    assert all(float(minutes) <= 4 for *_, minutes, _ in rows)


def test_welcome_notebook_map_lists_every_notebook():
    text = "".join("".join(cell["source"]) for cell in _cells(ROOT / "notebooks" / "00_welcome.ipynb"))
    rows = re.findall(r"^\| (\d\d) \| (\w+) \|", text, flags=re.M)
    assert rows == [_number_and_name(path) for path in NOTEBOOKS]


def test_exercise_keys_belong_to_their_notebooks():
    numbers = {_number_and_name(path)[0] for path in NOTEBOOKS}
    modules = {path.stem[2:] for path in (ROOT / "dlviz" / "course" / "exercises").glob("nb[0-9][0-9].py")}
    assert modules <= numbers, f"exercise modules without a notebook: {sorted(modules - numbers)}"
    for exercise in dlviz.course.exercises.all_exercises():
        number = exercise.key.split(".")[0]
        assert number in modules, exercise.key
        notebook = next(path for path in NOTEBOOKS if path.name.startswith(number + "_"))
        assert f'check(\\"{exercise.key}\\"' in notebook.read_text(), (f"{exercise.key} is not checked in "
                                                                        f"{notebook.name}")
