"""Every exercise's solution passes its check, every recorded wrong answer fails it, and every notebook has
exercises whose keys exist."""
import json
import pathlib
import re

import pytest

import dlviz.course.exercises as ex

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parents[2] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# the solutions that train a network (5-17 s each on a 2-core CPU): deselected by -m "not slow"
SLOW_SOLUTIONS = {"01.4", "01.5", "01.6", "10.4", "11.4"}


@pytest.mark.parametrize("exercise", [pytest.param(e, marks=pytest.mark.slow) if e.key in SLOW_SOLUTIONS else e
                                      for e in ex.all_exercises()], ids=lambda e: e.key)
def test_solution_passes_and_wrong_answers_fail(exercise):
    answer = exercise.solution()
    result = ex.check(exercise.key, answer)
    assert result.ok, f"the solution to {exercise.key} fails its own check: {result.why}"
    assert exercise.wrong, f"{exercise.key} records no wrong answer, so nothing shows its check can fail"
    for wrong in exercise.wrong:
        verdict = ex.check(exercise.key, wrong)
        assert not verdict.ok, f"{exercise.key} accepts the wrong answer {wrong!r}"
        assert verdict.why


def test_no_answer_is_not_yet_and_unknown_key_lists_known():
    exercise = ex.all_exercises()[0]
    assert not ex.check(exercise.key, ...).ok
    with pytest.raises(KeyError, match="known exercises"):
        ex.get("99.99")


@pytest.mark.parametrize("exercise", ex.all_exercises(), ids=lambda e: e.key)
def test_an_unfinished_answer_is_never_right(exercise):
    # what a student's cell holds before they write anything: `...`, None, or a function whose body is `...`
    def stub(*args, **kwargs):
        ...

    for unfinished in (..., None, stub, float("nan")):
        verdict = ex.check(exercise.key, unfinished)
        assert not verdict.ok, f"{exercise.key} accepts the unfinished answer {unfinished!r}"


def test_solution_is_hidden_until_revealed():
    exercise = ex.all_exercises()[0]
    shown = ex.solution(exercise.key)
    assert "<details>" in shown._repr_html_() and "def " in shown.code
    assert "def " not in repr(shown)


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if not p.name.startswith("00")], ids=lambda p: p.name[:2])
def test_every_notebook_has_checked_exercises(path):
    source = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"])
    keys = set(re.findall(r'exercises\.(?:check|solution)\(\s*"(\d\d\.\d+)"', source))
    number = path.name[:2]
    assert keys, f"{path.name} has no dlviz.course.exercises.check(...) cells"
    assert all(k.startswith(number + ".") for k in keys), f"{path.name} uses another notebook's exercise keys: {keys}"
    for key in keys:
        ex.get(key)
