"""benchmarks/run.py --quick: the harness runs and prints its tables with ratios (structure only, never speed)."""
import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # seconds to minutes: subprocesses, a browser, real runs

RUN = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"
NUMBER = r"\d+(\.\d+)?"


@pytest.fixture(scope="module")
def report():
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    done = subprocess.run([sys.executable, str(RUN), "--quick", "--threads", "1"], capture_output=True, text=True,
                          env=env, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def table(report, heading):
    """The rows of the Markdown table under ``## heading``, as lists of cells."""
    section = report.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    assert len(rows) >= 3, section
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]


def test_header_names_threads_bf16_and_versions(report):
    assert "torch threads: 1" in report
    assert re.search(r"native bfloat16 .*: (yes|no)", report)
    assert "torch " in report and "load average" in report


def test_time_table_has_every_quick_case_with_ratios(report):
    rows = table(report, "Time, side by side")
    cases = " ".join(row[0] for row in rows)
    for name in ("FGSM", "PGD", "LeNet training", "style transfer"):
        assert name in cases
    if importlib.util.find_spec("captum") is not None:
        for name in ("occlusion", "saliency", "guided backprop", "Integrated Gradients", "Grad-CAM"):
            assert name in cases
    else:
        assert "Captum is not installed" in report
    for row in rows:
        assert len(row) == 7, row
        ours, theirs, best, median = (float(row[i]) for i in (1, 3, 4, 5))
        assert ours > 0 and theirs > 0
        assert best == pytest.approx(theirs / ours, rel=0.05, abs=0.011)  # the table's times are rounded
        assert median > 0
        assert row[6]  # whether both sides gave the same result (not asserted: a later precision may differ)


def test_memory_and_peak_tables(report):
    memory = table(report, "Occlusion peak memory")
    assert memory and all(re.fullmatch(rf"{NUMBER} MB|n/a.*", row[2]) for row in memory)
    peak = table(report, "The machine's peak and the fraction reached")
    assert any("float32 matmul" in row[0] for row in peak)
    fractions = [line for line in report.split("| workload |", 1)[1].splitlines()[2:] if line.startswith("|")]
    names = " ".join(fractions)
    assert "LeNet training" in names and "style evaluation" in names
    for line in fractions:
        assert re.search(rf"\| {NUMBER}% \|$", line), line
