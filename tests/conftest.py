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
    """The folder that holds the real datasets: ``DLVIZ_DATA``, else ``../shared/datasets``, else dlviz's own data
    folder, where the loaders fetch what is missing (as the notebooks would). Without data and network the tests
    that need it are skipped with the loaders' message, and fail instead under CI, where the data must be there."""
    from dlviz import data

    for candidate in (os.environ.get("DLVIZ_DATA"), SHARED):
        if candidate and (pathlib.Path(candidate) / "MNIST" / "raw").is_dir():
            return pathlib.Path(candidate)
    try:
        data.mnist(train=False), data.fashion_mnist(train=False), data.tiny_shakespeare()
        for name in data.PAINTINGS:
            data.sample_image(name)
    except data.DataNotFoundError as error:
        if os.environ.get("CI"):
            pytest.fail(f"CI must have the course data: {error}")
        pytest.skip(f"the course data is not available: {error}")
    return data.data_root()


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a test module whose models and images are tiny: as fast as two on an idle machine, and
    far faster on a busy one. Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
