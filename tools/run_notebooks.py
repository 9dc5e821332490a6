#!/usr/bin/env python3
"""Re-execute course notebooks in place, top to bottom, and report each one's time and peak memory.

Usage (from the repository root, in the test environment):
    python tools/run_notebooks.py                 # every notebook in notebooks/
    python tools/run_notebooks.py notebooks/04_cnn.ipynb
    python tools/run_notebooks.py --jobs 1 notebooks/0[0-4]_*.ipynb   # one kernel at a time
    python tools/run_notebooks.py --check --isa AVX2 --precision fp32 --seed-offset 3   # another machine, asserts only

``--check`` runs every notebook without writing it and reports every cell that raised (an assert that no longer holds
prints its own line and message), with all cells run even after one fails. ``--isa`` gives another processor's
kernels on this one (oneDNN's ``ONEDNN_MAX_CPU_ISA``, ATen's ``ATEN_CPU_CAPABILITY`` and MKL's ``MKL_CBWR``);
``--precision fp32`` a machine without native bfloat16 (``DLVIZ_PRECISION``); ``--seed-offset K`` seeds nobody tuned
on (``DLVIZ_SEED_OFFSET``). ``--output-dir DIR`` writes the executed notebooks there instead of in place.

Kernels run two at a time by default, one torch thread each: the setting of the test suite, whose two workers run
two notebooks side by side on a 2-core machine; the longest notebooks (by their last run) start first. The report
gives each notebook's time and peak memory, then the set's wall-clock time and the sum of the notebooks' times (what
running them one after another would take).

Each notebook runs in a fresh kernel started from its own folder, with widget state not stored, so the
committed file passes ``../shared/tools/check_notebooks.py`` and nbval. A notebook that raises is not written.
Peak memory is the kernel's maximum resident set size. Notebooks run with an empty torch cache (``TORCH_HOME``), as
under the tests, so that the stored outputs do not depend on which ImageNet weights this machine happens to have.
"""
import argparse
import concurrent.futures
import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time


# another processor's kernels on this one: oneDNN's ceiling, ATen's vectorized kernels, MKL's code path
ISAS = {
    "AMX": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX"},
    "AVX512_CORE_BF16": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"},
    "AVX512_CORE": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE", "MKL_CBWR": "AVX512"},
    "AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"},
    "SSE41": {"ONEDNN_MAX_CPU_ISA": "SSE41", "ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "SSE4_2"},
}


def run_one(path: pathlib.Path, timeout: int, check: bool = False, output: pathlib.Path | None = None) -> list:
    """Execute one notebook (called in a child process so that its kernel's memory can be measured) and write it in
    place, or to ``output``; with ``check`` every cell runs even after one raises, nothing is written unless
    ``output`` is given, and the cells that raised are returned as (index, error name, message, line) tuples."""
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=False,
                                     allow_errors=check, resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    failures = [(index, *error_of(cell)) for index, cell in enumerate(nb.cells)
                if cell.cell_type == "code" and any(out.get("output_type") == "error" for out in cell.outputs)]
    if check and output is None:
        return failures
    nb.metadata.pop("widgets", None)
    strip_widget_views(nb)
    # what ipykernel's own kernelspec says, so that JupyterLab does not mark a freshly opened notebook as modified
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nbformat.write(nb, output / path.name if output else path)
    return failures


def error_of(cell) -> tuple[str, str, str]:
    """A cell's error: its name, its message and the cell's source line it was raised at ('' where not found)."""
    import re

    error = next(out for out in cell.outputs if out.get("output_type") == "error")
    plain = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(error.get("traceback", [])))
    # IPython marks the raising line of each frame with an arrow ("---> 19 assert ..."); the first is the cell's own
    marks = re.findall(r"^-+> *\d+ (.*)$", plain, re.M)
    return error.get("ename", ""), error.get("evalue", ""), marks[0].strip() if marks else ""


def strip_widget_views(nb) -> None:
    """Drop stored widget views that also have a plain-text form (progress bars, explorers' control lines): without
    the widget state, which is not stored, JupyterLab shows "Error displaying widget: model not found" for them before
    the notebook runs, and the text is what should show. nbval does not compare widget views."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "application/vnd.jupyter.widget-view+json" in data and "text/plain" in data:
                del data["application/vnd.jupyter.widget-view+json"]


def stored_seconds(path: pathlib.Path) -> float:
    """The notebook's cell time in its last run, from the execution timestamps nbclient stores (0 when absent)."""
    import datetime

    import nbformat

    total = 0.0
    for cell in nbformat.read(path, as_version=4).cells:
        stamps = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in stamps and "shell.execute_reply" in stamps:
            start, end = (datetime.datetime.fromisoformat(stamps[key].replace("Z", "+00:00"))
                          for key in ("iopub.execute_input", "shell.execute_reply"))
            total += (end - start).total_seconds()
    return total


def run_child(notebook: pathlib.Path, timeout: int, extra: list):
    """Execute ``notebook`` in a child process; returns the finished process and its wall-clock seconds."""
    start = time.perf_counter()
    child = subprocess.run([sys.executable, __file__, "--one", "--timeout", str(timeout), *extra, str(notebook)],
                           capture_output=True, text=True)
    return child, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=pathlib.Path)
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    parser.add_argument("--jobs", type=int, default=2,
                        help="notebooks run side by side (default 2, as the test suite's two workers)")
    parser.add_argument("--check", action="store_true",
                        help="run every cell, write nothing (unless --output-dir) and report the cells that raised")
    parser.add_argument("--output-dir", type=pathlib.Path, help="write the executed notebooks here, not in place")
    parser.add_argument("--isa", choices=sorted(ISAS), help="another processor's kernels (oneDNN, ATen, MKL)")
    parser.add_argument("--precision", choices=("auto", "fp32"),
                        help='what precision="auto" chooses (DLVIZ_PRECISION; fp32: a machine without bfloat16)')
    parser.add_argument("--seed-offset", type=int, help="shift every seed the course uses (DLVIZ_SEED_OFFSET)")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        failures = run_one(args.notebooks[0], args.timeout, args.check, args.output_dir)
        # the largest finished child of this process is the kernel; ru_maxrss is in kB on Linux
        print(f"PEAK_KB={resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
        print("FAILURES=" + json.dumps(failures))
        return 1 if failures else 0
    notebooks = args.notebooks or sorted(pathlib.Path("notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    # as under the tests (see conftest.py): no ImageNet weights, so the stored outputs are the ones CI computes
    os.environ["TORCH_HOME"] = tempfile.mkdtemp(prefix="dlviz-run-notebooks-torch-home-")
    # one torch thread per kernel, as under the tests (conftest.py): the stored numbers and times are CI's
    os.environ.setdefault("DLVIZ_THREADS", "1")
    setting = dict(ISAS[args.isa]) if args.isa else {}
    if args.precision:
        setting["DLVIZ_PRECISION"] = args.precision
    if args.seed_offset is not None:
        setting["DLVIZ_SEED_OFFSET"] = str(args.seed_offset)
    os.environ.update(setting)  # the kernels inherit it
    extra = (["--check"] if args.check else []) + (["--output-dir", str(args.output_dir)] if args.output_dir else [])
    if args.output_dir:
        args.output_dir.mkdir(parents=True, exist_ok=True)
    described = " ".join(f"{key}={value}" for key, value in setting.items()) or "this machine's default arithmetic"
    print(f"{'notebook':40s} {'time':>8s} {'peak memory':>12s}   ({args.jobs} at a time, "
          f"{os.environ['DLVIZ_THREADS']} thread each; {described})")
    if args.jobs > 1:  # the longest first (by their last run), so that the kernels finish close together
        notebooks = sorted(notebooks, key=stored_seconds, reverse=True)
    start, seconds, failed = time.perf_counter(), {}, 0
    # threads only wait for the child processes, which do the work
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        runs = {pool.submit(run_child, notebook, args.timeout, extra): notebook for notebook in notebooks}
        for done in concurrent.futures.as_completed(runs):
            notebook, (child, seconds[notebook]) = runs[done], done.result()
            lines = child.stdout.splitlines()
            peak = next((int(line[8:]) for line in lines if line.startswith("PEAK_KB=")), 0) / 1024
            cells = next((json.loads(line[9:]) for line in lines if line.startswith("FAILURES=")), [])
            status = "" if child.returncode == 0 else "  FAILED"
            print(f"{notebook.name:40s} {seconds[notebook]:7.0f}s {peak:9.0f} MB{status}", flush=True)
            for index, name, message, line in cells:
                print(f"    cell {index}: {name}: {message}" + (f"\n        at: {line}" if line else ""), flush=True)
            if child.returncode:
                failed += 1
                if not cells:
                    print(child.stderr[-3000:], file=sys.stderr)
    if len(notebooks) > 1:
        wall = time.perf_counter() - start
        print(f"{len(notebooks)} notebooks: {wall / 60:.1f} min wall-clock with {args.jobs} at a time; "
              f"their times sum to {sum(seconds.values()) / 60:.1f} min")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
