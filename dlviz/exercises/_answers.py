"""Reading students' answers in the forms they are likely to give them."""


def square_side(answer) -> float:
    """The side of a square (a receptive field, a window) given as one number or as (side, side)."""
    if isinstance(answer, (tuple, list)):
        if len(answer) != 2 or answer[0] != answer[1]:
            raise ValueError(f"expected one side length (the field is square), got {answer!r}")
        answer = answer[0]
    return float(answer)
