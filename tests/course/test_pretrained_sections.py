"""The notebooks' pretrained sections run end to end when the ImageNet weights are in torch's cache.

No ImageNet weights can be downloaded where the tests run, so each notebook's stored outputs are those of the
skipped sections. Here the weights are stand-ins: torchvision's own architectures with random values, saved under
the exact file names torchvision expects (``alexnet-owt-7be5be79.pth``, ...) in a temporary torch cache. The
notebook's cells tagged ``setup`` and ``imagenet`` run in a fresh kernel, and the test asserts that the switch
(``dlviz.course.imagenet.enabled``) said yes and that each section printed what it computed -- the "weights present"
path, not the skip message. The notebooks' files are not modified.
"""
import pathlib

import pytest
import torch

torchvision = pytest.importorskip("torchvision")
nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")

from dlviz.models.imagenet import cached_weights_path  # noqa: E402
from dlviz.course.imagenet import genuine  # noqa: E402

NOTEBOOKS = pathlib.Path(__file__).resolve().parents[2] / "notebooks"

# notebook -> (the torchvision model whose DEFAULT weights it uses, a line its pretrained section prints)
SECTIONS = {
    "08_visualizing_convnets.ipynb": ("alexnet", "explaining '"),
    "11_deepdream.ipynb": ("googlenet", "inception4c objective raised"),
    "13_style_transfer.ipynb": ("vgg19", "colour distance to the wave"),
}


def stand_in_weights(name: str, hub: pathlib.Path) -> pathlib.Path:
    """Random weights with the shapes of torchvision's file for ``name``, saved where torchvision looks for it."""
    weights = torchvision.models.get_model_weights(name).DEFAULT
    options = {"aux_logits": True, "init_weights": False} if name == "googlenet" else {}  # the file has aux heads
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None, **options)
    path = hub / "checkpoints" / cached_weights_path(weights).name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path


def tagged_cells(path: pathlib.Path):
    nb = nbformat.read(path, as_version=4)
    nb.cells = [cell for cell in nb.cells if cell.cell_type == "code"
                and {"setup", "imagenet"} & set(cell.metadata.get("tags", []))]
    return nb


def test_every_pretrained_section_is_tagged_and_uses_the_switch():
    for notebook, (name, _) in SECTIONS.items():
        cells = tagged_cells(NOTEBOOKS / notebook).cells
        sections = [cell for cell in cells if "imagenet" in cell.metadata.tags]
        assert sections and any(f'enabled("{name}")' in cell.source for cell in sections), notebook
        assert any("setup" in cell.metadata.tags for cell in cells), notebook
    for path in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"):      # no other recipe for the weights anywhere in the course
        text = path.read_text()
        assert "WeightsNotFoundError" not in text and 'vgg19_features(\\"auto\\")' not in text, path.name


@pytest.mark.slow
@pytest.mark.parametrize("notebook", sorted(SECTIONS))
def test_pretrained_section_runs_with_weights_present(notebook, tmp_path, monkeypatch, data_dir):
    name, section_line = SECTIONS[notebook]
    hub = tmp_path / "torch" / "hub"
    stand_in = stand_in_weights(name, hub)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))   # the kernel inherits this environment
    monkeypatch.setenv("DLVIZ_DATA", str(data_dir))
    monkeypatch.delenv("DLVIZ_IMAGENET", raising=False)         # the default: use cached weights
    monkeypatch.setattr(torch.hub, "_hub_dir", str(hub))
    assert not genuine(name)                                    # a stand-in: the hash in its name does not match
    nb = tagged_cells(NOTEBOOKS / notebook)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", store_widget_state=False,
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()                                            # raises CellExecutionError on any failing cell
    printed = "\n".join(output.get("text", "") for cell in nb.cells for output in cell.get("outputs", [])
                        if output.get("output_type") == "stream")
    assert f"ImageNet weights {stand_in.name}" in printed and "found in torch's cache" in printed, printed[-2000:]
    assert "skipped" not in printed and "not in torch's cache" not in printed, printed[-2000:]
    assert section_line in printed, printed[-2000:]
    figures = [output for cell in nb.cells if "imagenet" in cell.metadata.tags for output in cell.outputs
               if "image/png" in output.get("data", {})]
    assert figures, "the pretrained section drew no figure"
