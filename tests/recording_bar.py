"""A stand-in for dlviz's progress bars in tests: which bars a call opens, how far they go, and whether they show."""
import contextlib


class RecordingBar:
    """Stands in for dlviz's progress_bar: records the total, the updates and whether it was enabled."""

    def __init__(self):
        self.calls = []

    def __call__(self, total, desc, enabled=True, **kwargs):
        record = {"total": total, "desc": desc, "enabled": enabled, "updates": 0}
        self.calls.append(record)

        class Bar:
            def update(self, n=1):
                record["updates"] += n
        return contextlib.nullcontext(Bar())
