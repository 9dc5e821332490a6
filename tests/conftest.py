"""Shared test set-up: a non-interactive matplotlib, and the course data folder (DLVIZ_DATA, set by CI)."""
import os
import pathlib

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "datasets"


@pytest.fixture(scope="session")
def data_dir() -> pathlib.Path:
    """The folder that holds the real datasets; tests that need them are skipped loudly when it is absent."""
    for candidate in (os.environ.get("DLVIZ_DATA"), SHARED):
        if candidate and (pathlib.Path(candidate) / "MNIST" / "raw").is_dir():
            return pathlib.Path(candidate)
    pytest.skip("the course data (MNIST etc.) is not available: set DLVIZ_DATA")


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a test module whose models and images are tiny: as fast as two on an idle machine, and
    far faster on a busy one. Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
