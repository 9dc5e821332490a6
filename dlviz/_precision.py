"""Which arithmetic and memory layout a dlviz call runs a model in: ``precision="auto" | "fp32" | "bf16"``.

One place decides, for :func:`dlviz.fit` and :func:`dlviz.evaluate`, and for the inference-heavy paths
:func:`dlviz.occlusion`, :func:`dlviz.top_activations` and :func:`dlviz.fooling_images` (which default to "fp32" and
run bfloat16 only on request); benchmarks/run.py asks it too:

* ``"fp32"``: the model's own float arithmetic, no autocast (a float64 model stays float64).
* ``"bf16"``: bfloat16 autocast (``torch.autocast(device_type, dtype=torch.bfloat16)``) around the forward pass;
  weights, gradients and optimizer state stay float32, the loss and the accuracy are computed in float32.
* ``"auto"``: ``"bf16"`` where the device computes bfloat16 natively (a CPU with ``avx512_bf16`` or ``amx_bf16``
  in /proc/cpuinfo, a GPU for which ``torch.cuda.is_bf16_supported()``) and only for the kinds of model where
  bfloat16 was measured faster on such a CPU (convolutional nets and MLPs of float32); ``"fp32"`` otherwise --
  recurrent models (their cell state is carried from step to step, where bfloat16's 8-bit mantissa compounds),
  float64 models, anything else, and every device without native bfloat16 (where it would be emulated, slower).

The environment variable ``DLVIZ_PRECISION=fp32`` makes ``"auto"`` choose float32 everywhere, as it does on a
machine without native bfloat16: a developer's way to check on one machine that a lesson also holds on another.
``DLVIZ_PRECISION=auto`` (or unset) is the default; explicit ``"bf16"`` and ``"fp32"`` are not affected.

Independently of the precision, a model holding an ``nn.Conv2d`` runs in channels-last memory layout (model and
4-d batches), which oneDNN's convolutions and pooling run faster on CPUs; the layout of every parameter, gradient
and buffer is put back afterwards. :class:`Layout` is the one place that puts tensors in channels-last layout and
falls back to the usual (contiguous) layout when a model or kernel refuses it (:meth:`Layout.run`): for
:func:`dlviz.fit`/:func:`dlviz.evaluate` (model and batches), for :func:`dlviz.occlusion` (the images only, when
they have at least :data:`CHANNELS_LAST_MIN_PIXELS` pixels: :func:`input_layout`) and for style transfer's
bfloat16 path (its own weight copies and images).
"""
from __future__ import annotations

import contextlib
import functools
import os
import warnings
from dataclasses import dataclass

import torch
from torch import nn

PRECISIONS = ("auto", "fp32", "bf16")
_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
PRECISION_VARIABLE = "DLVIZ_PRECISION"
# model kinds for which "auto" picks bfloat16 on a device with native bfloat16 (measured: see benchmarks/run.py)
AUTO_BF16_KINDS = ("conv", "mlp")
# images at least this large go through a model in channels-last layout where only the inputs are converted
# (occlusion's many forward passes; smaller images gain nothing from it)
CHANNELS_LAST_MIN_PIXELS = 96 * 96


@functools.lru_cache(maxsize=1)
def cpu_native_bf16() -> bool:
    """True when the CPU has bfloat16 instructions (``avx512_bf16`` or ``amx_bf16`` among /proc/cpuinfo's flags);
    False where that file is missing (not Linux) or says otherwise."""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags") and ":" in line:
            flags.update(line.split(":", 1)[1].split())
    return any(flag in flags for flag in _BF16_FLAGS)


def native_bf16(device) -> bool:
    """Whether ``device`` (a torch.device or a string) computes bfloat16 natively."""
    device = torch.device(device)
    if device.type == "cpu":
        return cpu_native_bf16()
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return False


def auto_bf16(device) -> bool:
    """Whether ``precision="auto"`` may choose bfloat16 on ``device``: it computes bfloat16 natively and the
    environment variable ``DLVIZ_PRECISION`` is unset or ``"auto"`` (``"fp32"`` rules bfloat16 out). Any other value
    of the variable raises ValueError."""
    setting = os.environ.get(PRECISION_VARIABLE, "auto").strip().lower() or "auto"
    if setting not in ("auto", "fp32"):
        raise ValueError(f"the environment variable {PRECISION_VARIABLE} must be 'auto' or 'fp32' (what "
                         f"precision='auto' may choose), got {os.environ[PRECISION_VARIABLE]!r}")
    return setting == "auto" and native_bf16(device)


def model_kind(model: nn.Module) -> str:
    """``"recurrent"`` (an nn.RNN, LSTM or GRU inside), ``"conv"`` (an nn.Conv2d), ``"mlp"`` (nn.Linear layers and
    nothing of the other kinds, attention included) or ``"other"``."""
    kinds = {type(m) for m in model.modules()}
    if any(issubclass(k, nn.RNNBase) for k in kinds):
        return "recurrent"
    if any(issubclass(k, nn.MultiheadAttention) for k in kinds):
        return "other"
    if any(issubclass(k, nn.Conv2d) for k in kinds):
        return "conv"
    if any(issubclass(k, nn.Linear) for k in kinds):
        return "mlp"
    return "other"


def _float_dtype(model: nn.Module) -> torch.dtype | None:
    for tensor in model.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    return None


_NAMES = {torch.float32: "fp32", torch.float64: "fp64", torch.float16: "fp16", torch.bfloat16: "bf16"}


@dataclass(frozen=True)
class Plan:
    """What a call runs in: ``precision`` ("bf16" for bfloat16 autocast, else the model's dtype: "fp32", "fp64",
    ...), ``channels_last`` (model and 4-d inputs), and the device type autocast needs."""
    precision: str
    channels_last: bool
    device_type: str

    @property
    def autocast(self) -> bool:
        return self.precision == "bf16"

    @property
    def label(self) -> str:
        """For progress bars: ``"bf16, channels-last"``, ``"fp32"``, ..."""
        return self.precision + (", channels-last" if self.channels_last else "")


def plan(precision: str, model: nn.Module, device, *, channels_last: bool = True) -> Plan:
    """Resolve ``precision`` ("auto", "fp32" or "bf16") for ``model`` on ``device``.

    "bf16" on a device without native bfloat16 warns and falls back to "fp32" (bfloat16 would be emulated there,
    several times slower, with no gain to show for it); "bf16" for a model whose weights are not float32 raises
    ValueError (autocast lowers float32 operations only). A bad value raises ValueError.
    """
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(repr(p) for p in PRECISIONS)}, got {precision!r}")
    device = torch.device(device)
    dtype = _float_dtype(model) or torch.float32
    own = _NAMES.get(dtype, str(dtype).replace("torch.", ""))
    kind = model_kind(model)
    use_bf16 = False
    if precision == "bf16":
        if dtype != torch.float32:
            raise ValueError(f"precision='bf16' runs float32 models under bfloat16 autocast; this model's weights "
                             f"are {dtype}. Use precision='fp32' (its own dtype) or convert it with model.float().")
        if native_bf16(device):
            use_bf16 = True
        else:
            why = "no avx512_bf16 or amx_bf16 flag in /proc/cpuinfo" if device.type == "cpu" else "not supported"
            warnings.warn(f"precision='bf16': this {device.type} has no native bfloat16 arithmetic ({why}); running "
                          f"in float32 instead", UserWarning, stacklevel=3)
    elif precision == "auto":
        use_bf16 = dtype == torch.float32 and kind in AUTO_BF16_KINDS and auto_bf16(device)
    layout = channels_last and kind == "conv" and device.type in ("cpu", "cuda")
    return Plan("bf16" if use_bf16 else own, layout, device.type)


def channels_last(tensor):
    """A 4-d tensor in channels-last memory layout (the same values); anything else is returned as it is.

    Example:
        >>> import torch
        >>> from dlviz._precision import channels_last
        >>> x = torch.rand(2, 3, 4, 5)
        >>> channels_last(x).is_contiguous(memory_format=torch.channels_last), torch.equal(channels_last(x), x)
        (True, True)
        >>> channels_last(torch.rand(3, 4)).is_contiguous()
        True
    """
    if isinstance(tensor, torch.Tensor) and tensor.dim() == 4:
        return tensor.contiguous(memory_format=torch.channels_last)
    return tensor


class Layout:
    """A context that runs ``model`` in channels-last layout when ``enabled``; every 4-d parameter's, gradient's and
    buffer's strides are put back on exit, also when the block raises (values are kept: what training changed
    stays). :meth:`disable` puts them back early, for a model that cannot run in channels-last (one that calls
    ``.view`` on its feature maps). With ``model=None`` only the inputs are converted (``layout(inputs)``).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from dlviz._precision import Layout
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        >>> with Layout(model, True) as layout:
        ...     out = layout.run(model, torch.rand(1, 3, 5, 5))
        >>> out.is_contiguous(memory_format=torch.channels_last), model[0].weight.is_contiguous()   # put back
        (True, True)
        >>> class Viewing(nn.Module):             # .view on its feature maps refuses channels-last tensors
        ...     def forward(self, x):
        ...         return x.view(len(x), -1)
        >>> layout = Layout(None, True)           # the inputs only
        >>> layout.run(Viewing(), torch.rand(2, 3, 4, 4)).shape, layout.enabled   # fell back, for the rest too
        (torch.Size([2, 48]), False)
    """

    def __init__(self, model: nn.Module | None, enabled: bool):
        self.model, self.enabled, self.saved = model, enabled, []

    def __enter__(self):
        if self.enabled and self.model is not None:
            tensors = [t for t in list(self.model.parameters()) + list(self.model.buffers()) if t.dim() == 4]
            self.saved = [(t, t.stride()) for t in tensors]
            self.model.to(memory_format=torch.channels_last)
        return self

    def __exit__(self, *exc):
        self.restore()
        return False

    def disable(self) -> None:
        self.restore()
        self.enabled = False

    def restore(self) -> None:
        with torch.no_grad():
            for t, stride in self.saved:
                if t.stride() != stride:
                    t.data = _restrided(t.data, stride)
                grad = getattr(t, "grad", None)
                if grad is not None and not grad.is_sparse and grad.shape == t.shape and grad.stride() != stride:
                    t.grad = _restrided(grad, stride)
        self.saved = []

    def __call__(self, inputs):
        """``inputs`` in this layout (4-d tensors only; anything else is returned as it is)."""
        return channels_last(inputs) if self.enabled else inputs

    def run(self, forward, inputs):
        """``forward(inputs in this layout)``; when that raises RuntimeError in channels-last layout (a model or
        kernel that refuses it), the layout is disabled for the rest of the call and ``forward`` runs again on
        ``inputs.contiguous()``. An error in the usual layout is raised as it is."""
        try:
            return forward(self(inputs))
        except RuntimeError:
            if not self.enabled:
                raise
            self.disable()
        return forward(inputs.contiguous())


def input_layout(images: torch.Tensor, min_pixels: int = CHANNELS_LAST_MIN_PIXELS) -> Layout:
    """The layout for running a model on ``images`` (N, C, H, W) converting the inputs only: channels-last when an
    image has at least ``min_pixels`` pixels (H * W), the usual layout otherwise.

    Example:
        >>> import torch
        >>> from dlviz._precision import input_layout
        >>> input_layout(torch.rand(1, 3, 224, 224)).enabled, input_layout(torch.rand(1, 1, 28, 28)).enabled
        (True, False)
    """
    return Layout(None, images.dim() == 4 and images.shape[-1] * images.shape[-2] >= min_pixels)


def _restrided(tensor: torch.Tensor, stride) -> torch.Tensor:
    out = torch.empty_strided(tensor.shape, stride, dtype=tensor.dtype, device=tensor.device)
    out.copy_(tensor)
    return out


def autocast(the_plan: Plan | None):
    """The autocast context of the plan (a null context unless it is bfloat16; None: the model's own arithmetic)."""
    if the_plan is not None and the_plan.autocast:
        return torch.autocast(the_plan.device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def as_float32(scores):
    """Scores computed under bfloat16 (or float16) autocast, back in float32 for the loss and the accuracy."""
    if isinstance(scores, torch.Tensor) and scores.dtype in (torch.bfloat16, torch.float16):
        return scores.float()
    return scores
