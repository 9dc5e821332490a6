"""Reading students' answers in the forms they are likely to give them."""


def number(answer) -> float:
    """A plain float from a Python number, a NumPy scalar or array of one element, or a one-element tensor."""
    import numpy as np

    if answer is None or answer is Ellipsis:
        raise ValueError("expected a number, got nothing (None): a function that should compute it must return it")
    if isinstance(answer, bool):
        raise ValueError("expected a number, got a bool")
    value = np.asarray(answer.detach().cpu() if hasattr(answer, "detach") else answer, dtype=float)
    if value.size != 1:
        raise ValueError(f"expected one number, got {value.size} numbers (shape {value.shape})")
    value = float(value.reshape(()))
    if not np.isfinite(value):
        # NaN would slip through every "abs(got - expected) > tolerance" test
        raise ValueError(f"expected a finite number, got {value}")
    return value


def square_side(answer) -> float:
    """The side of a square (a receptive field, a window) given as one number or as (side, side)."""
    if isinstance(answer, (tuple, list)):
        if len(answer) != 2 or answer[0] != answer[1]:
            raise ValueError(f"expected one side length (the field is square), got {answer!r}")
        answer = answer[0]
    return number(answer)
