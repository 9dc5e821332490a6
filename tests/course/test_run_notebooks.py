"""tools/run_notebooks.py: executes notebooks in place (two side by side by default), reports each one's time and
peak memory and the set's wall-clock time, and leaves a notebook that raises as it was."""
import os
import pathlib
import re
import subprocess
import sys

import nbformat
import pytest

pytestmark = pytest.mark.slow  # seconds to minutes: subprocesses, a browser, real runs

RUNNER = pathlib.Path(__file__).resolve().parents[2] / "tools" / "run_notebooks.py"


def notebook(path: pathlib.Path, *sources: str) -> pathlib.Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nbformat.write(nb, path)
    return path


def run(*args, cwd):
    env = {key: value for key, value in os.environ.items() if key != "DLVIZ_THREADS"}  # the runner's own default
    return subprocess.run([sys.executable, str(RUNNER), *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runner")
    paths = [notebook(folder / f"{i:02d}_demo.ipynb", "import os", f"print({i} * 7, os.environ['DLVIZ_THREADS'])")
             for i in range(3)]
    done = run("--jobs", "2", *paths, cwd=folder)
    return done, paths


def test_every_notebook_is_executed_in_place_with_one_thread(report):
    done, paths = report
    assert done.returncode == 0, done.stderr[-2000:]
    for i, path in enumerate(paths):
        nb = nbformat.read(path, as_version=4)
        assert nb.cells[1].outputs[0]["text"] == f"{i * 7} 1\n"
        assert "widgets" not in nb.metadata


def test_report_gives_each_time_and_memory_and_the_sets_wall_clock(report):
    done, paths = report
    out = done.stdout
    assert "2 at a time, 1 thread each" in out
    for path in paths:
        assert re.search(rf"{path.name}\s+\d+s\s+\d+ MB\n", out), out
    assert re.search(r"3 notebooks: \d+\.\d min wall-clock with 2 at a time; their times sum to \d+\.\d min", out)


def test_a_notebook_that_raises_fails_the_run_and_is_not_written(tmp_path):
    path = notebook(tmp_path / "00_bad.ipynb", "raise ValueError('no')")
    before = path.read_text()
    done = run("--jobs", "1", path, cwd=tmp_path)
    assert done.returncode == 1
    assert "FAILED" in done.stdout and "ValueError" in done.stderr
    assert path.read_text() == before


def test_jobs_must_be_positive(tmp_path):
    done = run("--jobs", "0", notebook(tmp_path / "00_x.ipynb", "1"), cwd=tmp_path)
    assert done.returncode == 2 and "--jobs must be at least 1" in done.stderr


def test_check_runs_every_cell_reports_each_failed_assert_and_writes_nothing(tmp_path):
    path = notebook(tmp_path / "00_lesson.ipynb", "x = 1", "assert x == 2, 'x should be 2'", "y = x + 1",
                    "assert y > 5")
    before = path.read_text()
    done = run("--jobs", "1", "--check", path, cwd=tmp_path)
    assert done.returncode == 1 and "FAILED" in done.stdout
    assert "cell 1: AssertionError: x should be 2" in done.stdout
    assert "at: assert x == 2, 'x should be 2'" in done.stdout
    assert "cell 3: AssertionError" in done.stdout and "at: assert y > 5" in done.stdout   # ran after the failure
    assert path.read_text() == before


def test_another_machine_and_other_seeds_reach_the_kernel(tmp_path):
    """--isa, --precision and --seed-offset set the variables that oneDNN, ATen, MKL and dlviz read, in the kernel;
    --output-dir writes the executed notebook there and leaves the original alone."""
    path = notebook(tmp_path / "00_env.ipynb", "import os",
                    "print([os.environ.get(k) for k in ('ONEDNN_MAX_CPU_ISA', 'ATEN_CPU_CAPABILITY', 'MKL_CBWR', "
                    "'DLVIZ_PRECISION', 'DLVIZ_SEED_OFFSET')])",
                    "from dlviz.train import shifted\nprint(shifted(0), shifted(2))")
    before = path.read_text()
    done = run("--jobs", "1", "--check", "--isa", "AVX2", "--precision", "fp32", "--seed-offset", "3",
               "--output-dir", tmp_path / "out", path, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ONEDNN_MAX_CPU_ISA=AVX2" in done.stdout and "DLVIZ_SEED_OFFSET=3" in done.stdout
    executed = nbformat.read(tmp_path / "out" / path.name, as_version=4)
    assert executed.cells[1].outputs[0]["text"] == "['AVX2', 'avx2', 'AVX2', 'fp32', '3']\n"
    assert executed.cells[2].outputs[0]["text"] == "3 5\n"
    assert path.read_text() == before
