"""Repository-wide pytest set-up, loaded for the unit tests and for nbval's notebook runs alike."""
import atexit
import os
import shutil
import tempfile

import nbval.kernel

# The notebooks use ImageNet weights when torch's cache has them (AlexNet in 06, GoogLeNet in 07, VGG-19 in 09),
# and their committed outputs were made without (none can be downloaded where CI runs). The kernels nbval starts
# inherit this environment: an empty torch cache makes every machine compute what CI computes.
os.environ["TORCH_HOME"] = tempfile.mkdtemp(prefix="dlviz-tests-torch-home-")
atexit.register(shutil.rmtree, os.environ["TORCH_HOME"], ignore_errors=True)
# The notebooks use the machine's default thread count unless DLVIZ_THREADS says otherwise; under the tests (and in
# tools/run_notebooks.py) each kernel uses one thread: the stored outputs were made so, and on a shared 2-core machine
# one thread per kernel is faster than two.
os.environ.setdefault("DLVIZ_THREADS", "1")


def _execute_with_history(self, cell_input, allow_stdin=None):
    """Send a cell as JupyterLab does, with store_history=True.

    nbval 0.11 sends store_history=False, and IPython then decides whether a trailing ';' hides a cell's result by
    looking at the *previous* cell in its history: `plot(...);` would show a result under nbval that Jupyter hides,
    and every plotting cell would fail to compare. Returns the request's message id, as nbval expects.
    """
    return self.kc.execute(cell_input, store_history=True, allow_stdin=allow_stdin, stop_on_error=False)


nbval.kernel.RunningKernel.execute_cell_input = _execute_with_history
