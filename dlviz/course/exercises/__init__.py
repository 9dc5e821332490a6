"""Exercises with checks that say right or wrong (and why), and solutions a student reveals on demand.

In a notebook::

    answer = ...                                   # the student's work
    dlviz.course.exercises.check("04.2", answer)          # prints a verdict and why; returns a CheckResult
    dlviz.course.exercises.solution("04.2")               # a collapsed block with the solution's code

Each notebook's exercises live in ``dlviz/exercises/nbXX.py`` and are registered with :func:`register`. The test
suite runs every solution through its check and every recorded wrong answer too, so a check that cannot fail or a
solution that stops working is caught.
"""
import dataclasses
import html
import importlib
import inspect
import pkgutil
from typing import Any, Callable

_REGISTRY: dict[str, "Exercise"] = {}


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """The verdict of a check: ``ok`` (bool) and ``why`` (one or two sentences for the student).

    Made by :func:`check`; it is true when the answer is right, and prints as one line with the verdict and why.

    Example:
        >>> from dlviz.course.exercises import check
        >>> verdict = check("04.1", 55)
        >>> bool(verdict), verdict.key, verdict.title
        (False, '04.1', 'Output size of a convolution')
        >>> verdict
        [04.1 Output size of a convolution] not yet: expected a function out_size(n, k, s, p) that returns an int
    """
    key: str
    title: str
    ok: bool
    why: str

    def __bool__(self):
        return self.ok

    def __repr__(self):
        mark = "right" if self.ok else "not yet"
        return f"[{self.key} {self.title}] {mark}: {self.why}"


@dataclasses.dataclass(frozen=True)
class Exercise:
    """One exercise.

    key: "NN.k" (notebook NN, exercise k). check(answer) -> (ok, why). solution() -> an answer that passes the check,
    computed from scratch (it may train a small model; keep it to seconds on a CPU). wrong: answers a student could
    plausibly give that the check must reject (the tests make sure it does).

    Example:
        >>> from dlviz.course.exercises import get
        >>> exercise = get("04.1")
        >>> exercise.title
        'Output size of a convolution'
        >>> out_size = exercise.solution()
        >>> out_size(28, 5), exercise.check(out_size)[0], exercise.check(exercise.wrong[0])[0]
        (24, True, False)
    """
    key: str
    title: str
    check: Callable[[Any], tuple[bool, str]]
    solution: Callable[[], Any]
    wrong: tuple = ()


def register(key: str, title: str, *, check, solution, wrong=()) -> Exercise:
    """Add an exercise to the registry (called at import time by the ``nbXX`` modules).

    Args:
        key: "NN.k" (notebook NN, exercise k); registering a key twice with another solution raises ValueError.
        title: a few words naming the exercise.
        check: ``check(answer) -> (ok, why)``: a bool and one or two sentences for the student.
        solution: a function of no arguments returning an answer that passes ``check``.
        wrong: plausible wrong answers that ``check`` must reject.

    Returns the :class:`Exercise`.

    Example:
        >>> import dlviz.course.exercises as ex
        >>> def double_check(answer):
        ...     return answer == 4, "2 + 2 = 4"
        >>> def double_solution():
        ...     return 2 + 2
        >>> exercise = ex.register("99.1", "Two plus two", check=double_check, solution=double_solution, wrong=[5])
        >>> ex.check("99.1", 4).ok, ex.check("99.1", 5).ok
        (True, False)
        >>> _ = ex._REGISTRY.pop("99.1")   # forget the demo exercise again
    """
    if key in _REGISTRY and _REGISTRY[key].solution.__qualname__ != solution.__qualname__:
        raise ValueError(f"exercise {key!r} is registered twice")
    exercise = Exercise(key, title, check, solution, tuple(wrong))
    _REGISTRY[key] = exercise
    return exercise


def _load_all():
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("nb"):
            importlib.import_module(f"{__name__}.{info.name}")


def all_exercises() -> list[Exercise]:
    """Every registered exercise (:class:`Exercise`), in notebook order ("01.1", "01.2", ..., "13.4").

    Example:
        >>> from dlviz.course.exercises import all_exercises
        >>> exercises = all_exercises()
        >>> exercises[0].key, exercises[0].title
        ('01.1', 'Margins and the Novikoff bound')
    """
    _load_all()
    return [_REGISTRY[k] for k in sorted(_REGISTRY, key=lambda k: tuple(int(p) for p in k.split(".")))]


def get(key: str) -> Exercise:
    """The exercise ``key`` ("NN.k"); an unknown key raises a KeyError that lists the known ones.

    Example:
        >>> from dlviz.course.exercises import get
        >>> get("04.1").title
        'Output size of a convolution'
        >>> get("4.1")
        Traceback (most recent call last):
        ...
        KeyError: "no exercise '4.1'; known exercises: 01.1, ..."
    """
    _load_all()
    if key not in _REGISTRY:
        known = ", ".join(e.key for e in all_exercises()) or "none"
        raise KeyError(f"no exercise {key!r}; known exercises: {known}")
    return _REGISTRY[key]


def check(key: str, answer: Any) -> CheckResult:
    """Check a student's answer. Never raises on a wrong answer: the verdict says what was expected instead.

    Args:
        key: the exercise, "NN.k" (an unknown key raises KeyError).
        answer: whatever the exercise asks for (a number, a function, a tensor...); None or ``...`` means no
            answer yet.

    Returns a :class:`CheckResult`, true when the answer is right; in a notebook it prints the verdict and why.

    Example:
        >>> from dlviz.course.exercises import check
        >>> def out_size(n, k, s=1, p=0):
        ...     return (n + 2 * p - k) // s + 1
        >>> check("04.1", out_size).ok
        True
        >>> check("04.1", ...)
        [04.1 Output size of a convolution] not yet: no answer yet: replace the ... with your answer and run the cell again
    """
    exercise = get(key)
    if answer is None or answer is Ellipsis:
        return CheckResult(key, exercise.title, False, "no answer yet: replace the ... with your answer and run the cell again")
    try:
        ok, why = exercise.check(answer)
    except Exception as error:                       # a malformed answer is a wrong answer, explained
        ok, why = False, f"the check could not read this answer ({type(error).__name__}: {error})"
    return CheckResult(key, exercise.title, bool(ok), why)


class Solution:
    """A solution's source code, shown collapsed (click to reveal) in Jupyter and hidden in plain text.

    Made by :func:`solution`: ``code`` is the source, :meth:`run` computes the answer.

    Example:
        >>> from dlviz.course.exercises import Solution, get
        >>> shown = Solution(get("04.1"))
        >>> shown
        solution to 04.1 (Output size of a convolution) hidden: print(.code) to reveal it
        >>> shown._repr_html_().startswith("<details>"), shown.run()(28, 5)
        (True, 24)
    """

    def __init__(self, exercise: Exercise):
        self.exercise = exercise
        self.code = inspect.getsource(exercise.solution)

    def _repr_html_(self):
        return (f"<details><summary>Reveal the solution to {self.exercise.key} ({html.escape(self.exercise.title)})"
                f"</summary><pre>{html.escape(self.code)}</pre></details>")

    def __repr__(self):
        return f"solution to {self.exercise.key} ({self.exercise.title}) hidden: print(.code) to reveal it"

    def run(self):
        """Compute the solution's answer."""
        return self.exercise.solution()


def solution(key: str) -> Solution:
    """The solution to exercise ``key``, revealed by a click in Jupyter (or ``print(solution(key).code)``).

    Returns a :class:`Solution`; an unknown key raises KeyError.

    Example:
        >>> from dlviz.course.exercises import solution
        >>> shown = solution("04.1")
        >>> shown
        solution to 04.1 (Output size of a convolution) hidden: print(.code) to reveal it
        >>> print(shown.code)
        def _out_size_solution():
        ...
            return out_size
    """
    return Solution(get(key))
