"""Progress bars that a saved notebook shows in their final state, for every long dlviz call.

:class:`StoredBar` wraps a ``tqdm.auto`` bar; :func:`progress_bar` is the one way dlviz functions show progress
(``progress=True`` by default, ``progress=False`` for none); :func:`progress` wraps an iterable.
"""
from __future__ import annotations

import contextlib

from tqdm.auto import tqdm

__all__ = ["StoredBar", "progress_bar", "progress"]


class StoredBar:
    """A ``tqdm.auto`` bar whose saved notebook text is its final state, not the 0% it showed first.

    A notebook bar (an ipywidget) keeps, as the plain text saved in the ``.ipynb``, what it showed when it was first
    displayed: 0%. Here the bar is displayed under a display id and that display is updated with its final state
    when the bar closes. Outside Jupyter it is an ordinary ``tqdm`` bar.
    """

    def __init__(self, iterable=None, **kwargs):
        from tqdm.notebook import tqdm as notebook_tqdm

        self._handle = None
        if isinstance(tqdm, type) and issubclass(tqdm, notebook_tqdm) and not kwargs.get("disable"):
            from IPython.display import display

            self.bar = tqdm(iterable, display=False, **kwargs)
            self._handle = display(self.bar.container, display_id=True)
        else:
            self.bar = tqdm(iterable, **kwargs)

    def close(self):
        self.bar.close()
        if self._handle is not None:
            self._handle.update(self.bar.container)   # a leave=False bar is hidden by tqdm; its text is final
            self._handle = None


def progress(iterable, **kwargs):
    """Iterate with a ``tqdm.auto`` bar that a notebook stores in its final state, not at 0%.

    ``kwargs`` go to ``tqdm`` (``desc``, ``total``...); ``leave`` is always true (the bar that stays is the point).

    Args:
        iterable: anything to iterate over; its items are yielded unchanged.

    Example:
        >>> from dlviz.train import progress
        >>> total = 0
        >>> for step in progress(range(5), desc="steps"):   # the bar is drawn on stderr (or in the notebook)
        ...     total += step
        >>> total
        10
    """
    kwargs["leave"] = True
    stored = StoredBar(iterable, **kwargs)
    try:
        yield from stored.bar
    finally:
        stored.close()


@contextlib.contextmanager
def progress_bar(total: int | None, desc: str, enabled: bool = True, **kwargs):
    """A ``tqdm.auto`` bar of ``total`` steps for a long call (disabled when ``enabled`` is false), closed -- and
    stored in its final state in a notebook -- when the block ends, also when it raises. Yields the tqdm bar
    (``bar.update()``, ``bar.set_postfix(...)``). The bar is not left behind in a terminal (``leave=False``)."""
    if not isinstance(enabled, bool):
        raise TypeError(f"progress must be True or False, got {enabled!r}")
    kwargs.setdefault("leave", False)
    stored = StoredBar(total=total, desc=desc, disable=not enabled, **kwargs)
    try:
        yield stored.bar
    finally:
        stored.close()
