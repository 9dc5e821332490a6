#!/usr/bin/env python3
"""Tag the notebook cells whose text output is the same on every machine and seed, so that nbval compares them.

The test suite runs nbval with ``--nbval-lax``: every cell must run without an error (the lessons' asserts), and only
cells tagged ``nbval-check-output`` have their stored output compared. Which cells qualify is measured, not guessed:
run the notebooks under other arithmetics and seeds with ``tools/run_notebooks.py --check --output-dir DIR`` (each
run into its own folder), then

    python tools/mark_stable_outputs.py RUN_DIR [RUN_DIR ...]          # report, change nothing
    python tools/mark_stable_outputs.py --write RUN_DIR [RUN_DIR ...]  # tag and untag in notebooks/

A cell is tagged when its text outputs (stdout, results, errors; images are never compared), after the sanitizing
rules of notebooks/nbval_sanitize.cfg, are identical in the committed notebook and in every run given: text, shapes,
counts, parameter and multiply-add counts, exact integer results. Numbers that come out of training or optimization
differ between seeds (give a run with DLVIZ_SEED_OFFSET) or arithmetics (give one with ``--isa AVX2 --precision
fp32``, or one from the other machine kind), so they stay untagged and are checked by the lessons' asserts instead.
Cells tagged ``nbval-ignore-output`` are left alone, and so are cells that report a rounding error (a number
written as ``1.1e-16``, below 1e-5, or as ``0.0e+00``): its digits depend on the processor even when every run here
agreed. A run whose notebook has a different number of cells than the committed one is skipped for that notebook
(re-run it after editing).
"""
import argparse
import pathlib
import re
import sys

import nbformat

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHECK, IGNORE = "nbval-check-output", "nbval-ignore-output"


def sanitizers(path: pathlib.Path = ROOT / "notebooks" / "nbval_sanitize.cfg") -> list:
    """nbval's own (regex, replacement) pairs from the sanitize file, read as nbval reads them."""
    from nbval.plugin import get_sanitize_patterns

    return [(re.compile(regex), replace) for regex, replace in get_sanitize_patterns(path.read_text())]


def text_of(cell, rules) -> str:
    """A cell's text outputs as nbval sees them after sanitizing ('' for none)."""
    parts = []
    for out in cell.get("outputs", []):
        kind = out.get("output_type")
        if kind == "stream":
            parts.append(f"[{out.get('name')}] {out.get('text', '')}")
        elif kind in ("execute_result", "display_data"):
            data = out.get("data", {})
            if "text/plain" in data and not any(k.startswith("image/") for k in data):
                parts.append(f"[{kind}] {data['text/plain']}")
        elif kind == "error":
            parts.append(f"[error] {out.get('ename')}: {out.get('evalue')}")
    text = "\n".join(parts)
    for regex, replace in rules:
        text = regex.sub(replace, text)
    return text


# 3e-06, 1.1e-16, 0.0e+00: the size of a rounding error, written in scientific notation
ROUNDING_ERROR = re.compile(r"\d[eE]-(0*[5-9]|0*[1-9]\d)\b|\b0\.0+[eE][+-]?0+\b")


def stable_cells(committed, runs: list, rules) -> set:
    """Indices of code cells with a non-empty text output that is the same in ``committed`` and in every run, and
    that reports no rounding error."""
    stable = set()
    for index, cell in enumerate(committed.cells):
        if cell.cell_type != "code" or IGNORE in cell.metadata.get("tags", []):
            continue
        text = text_of(cell, rules)
        if text and not ROUNDING_ERROR.search(text) and all(text_of(run.cells[index], rules) == text for run in runs):
            stable.add(index)
    return stable


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=pathlib.Path, help="folders of executed notebooks")
    parser.add_argument("--write", action="store_true", help="tag and untag the cells in notebooks/")
    args = parser.parse_args()
    rules = sanitizers()
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        committed = nbformat.read(path, as_version=4)
        runs = []
        for folder in args.runs:
            run_path = folder / path.name
            if not run_path.exists():
                continue
            run = nbformat.read(run_path, as_version=4)
            if len(run.cells) == len(committed.cells):
                runs.append(run)
            else:
                print(f"{path.name}: {folder} has {len(run.cells)} cells, the notebook {len(committed.cells)}: skipped",
                      file=sys.stderr)
        stable = stable_cells(committed, runs, rules)
        with_text = sum(1 for c in committed.cells if c.cell_type == "code" and text_of(c, rules))
        print(f"{path.name:40s} {len(stable):3d} of {with_text:3d} cells with text output compared "
              f"(the same in {len(runs)} other runs)")
        if args.write:
            for index, cell in enumerate(committed.cells):
                if cell.cell_type != "code":
                    continue
                tags = [t for t in cell.metadata.get("tags", []) if t != CHECK]
                if index in stable:
                    tags.append(CHECK)
                if tags:
                    cell.metadata["tags"] = tags
                else:
                    cell.metadata.pop("tags", None)
            nbformat.write(committed, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
