"""Structured pruning: remove whole units so the dense model really shrinks.

Two families of structure are found automatically:

* **BERT-style encoder layers** (``attention.self.query/key/value``,
  ``attention.output.dense``, ``intermediate.dense``, ``output.dense``: BERT, MiniLM,
  RoBERTa...): whole attention heads and MLP hidden units are cut out.
* **Producer → per-channel ops → consumer chains** in an ``torch.fx``-traceable module
  (Conv1d/Conv2d/Conv3d/Linear, then BatchNorm/InstanceNorm/activations/pooling/flatten,
  then one convolution of the same kind or a Linear):
  output channels of the producer (and the matching inputs of the consumer) are cut
  out. A channel that also feeds a residual addition is left alone, so ResNet blocks
  lose their inner channels only.

Units are ranked by their contribution to the next layer on calibration data
(mean squared activation times the squared norm of the weights reading it). After the
cut, the weights reading the pruned layer are refitted by ridge-regularized least
squares so that, on the calibration data, the pruned model's pre-normalization
activations match the original model's (layer-wise reconstruction; the ridge pulls
towards the original weights). No gradient training is needed; an optional
``train(model, steps)`` callable can fine-tune afterwards.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from groundwork.errors import InvalidInput, NotPrunable

#: Rows (tokens or pixels) used per least-squares fit; more costs memory and time.
MAX_FIT_ROWS = 16384
#: Ridge strength, relative to the mean diagonal of the Gram matrix, towards the original weights.
RIDGE = 1.0


#: Kept channel counts are rounded to these multiples: INT8/BF16 kernels work in blocks of
#: 16-64 channels, and a ragged count (say 45) runs slower than the next aligned one.
ALIGN_CHANNELS = 16
ALIGN_UNITS = 64


def aligned_keep(total: int, sparsity: float, align: int) -> int:
    """How many of ``total`` units to keep at ``sparsity``, rounded to a multiple of ``align``.

    Layers narrower than four blocks are not aligned; at least one unit (one block) stays.
    """
    keep = total - int(math.floor(sparsity * total + 0.5))
    if total >= 4 * align:
        keep = max(align, int(round(keep / align)) * align)
    return max(1, min(total, keep))


@dataclass
class PruneResult:
    module: Any
    sparsity: float
    params_before: int
    params_after: int
    flops_before: int
    flops_after: int
    structures: list[str] = field(default_factory=list)

    @property
    def flops_ratio(self) -> float:
        return self.flops_after / self.flops_before if self.flops_before else 1.0

    def summary(self) -> str:
        return (
            f"params {self.params_before / 1e6:.2f}M -> {self.params_after / 1e6:.2f}M, "
            f"FLOPs {self.flops_before / 1e9:.3f}G -> {self.flops_after / 1e9:.3f}G per row"
        )


# --- counting -------------------------------------------------------------------------
def count_params(module: Any) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def count_flops(module: Any, args: Sequence[Any]) -> int:
    """FLOPs (2 x multiply-adds of matmuls, convolutions, attention) of one call on ``args``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        module(*args)
    return int(counter.get_total_flops())


# --- entry point ------------------------------------------------------------------------
def prune(
    module: Any,
    sparsity: float,
    calibration: Sequence[tuple[Any, ...]],
    *,
    reconstruct: bool = True,
    train: Callable[[Any, int], Any] | None = None,
    train_steps: int = 0,
) -> PruneResult:
    """A pruned copy of ``module`` with about ``sparsity`` of each prunable group removed.

    ``calibration`` is a list of argument tuples (batches) the module is called with.
    The input module is not modified.
    """
    import torch

    if not 0.0 < sparsity < 1.0:
        raise InvalidInput(f"sparsity must be between 0 and 1 (exclusive); got {sparsity}")
    if not calibration:
        raise InvalidInput("structured pruning needs calibration data")
    from groundwork.engines.runtime.torch_session import set_eval

    teacher = set_eval(module)
    one_row = tuple(a[:1] for a in calibration[0])
    params_before = count_params(teacher)
    flops_before = count_flops(teacher, one_row)
    student = set_eval(copy.deepcopy(teacher))
    layers = find_encoder_layers(student)
    with torch.no_grad():
        if layers:
            structures = _prune_encoder(teacher, student, layers, sparsity, calibration, reconstruct)
        else:
            structures = _prune_chains(teacher, student, sparsity, calibration, reconstruct)
    if train is not None and train_steps > 0:
        student.train()
        returned = train(student, train_steps)
        if returned is not None and isinstance(returned, torch.nn.Module):
            student = returned
    set_eval(student)
    return PruneResult(
        module=student,
        sparsity=sparsity,
        params_before=params_before,
        params_after=count_params(student),
        flops_before=flops_before,
        flops_after=count_flops(student, one_row),
        structures=structures,
    )


# --- least squares ------------------------------------------------------------------------
def _fit_linear(x: Any, y: Any, w0: Any, b0: Any | None, ridge: float = RIDGE) -> tuple[Any, Any | None]:
    """Solve ``min |x W^T + b - y|^2 + r |[W b] - [w0 b0]|^2``; returns (W, b) in float32.

    ``x``: (rows, in), ``y``: (rows, out), ``w0``: (out, in); with ``b0`` None the fit
    has no intercept and ``b`` is None. The Gram matrix is accumulated in float64 in
    chunks, so a large ``x`` is never copied whole.
    """
    import torch

    rows, n_in = x.shape
    with_bias = b0 is not None
    dim = n_in + int(with_bias)
    gram = torch.zeros(dim, dim, dtype=torch.float64)
    cross = torch.zeros(dim, y.shape[1], dtype=torch.float64)
    for start in range(0, rows, 4096):
        xc = x[start : start + 4096].double()
        if with_bias:
            xc = torch.cat([xc, torch.ones(xc.shape[0], 1, dtype=torch.float64)], dim=1)
        gram += xc.T @ xc
        cross += xc.T @ y[start : start + 4096].double()
    prior = w0.T.double()
    if b0 is not None:
        prior = torch.cat([prior, b0.double()[None, :]], dim=0)
    strength = ridge * float(gram.diagonal()[:n_in].mean().clamp(min=1e-12))
    gram += strength * torch.eye(dim, dtype=torch.float64)
    solution = torch.linalg.solve(gram, cross + strength * prior)
    weight = solution[:n_in].T.float().contiguous()
    return weight, (solution[n_in].float().contiguous() if with_bias else None)


def _subsample(rows: int, generator: Any) -> Any:
    import torch

    if rows <= MAX_FIT_ROWS:
        return torch.arange(rows)
    return torch.randperm(rows, generator=generator)[:MAX_FIT_ROWS].sort().values


def _run_all(module: Any, calibration: Sequence[tuple[Any, ...]]) -> None:
    for args in calibration:
        module(*args)


def _hook_inputs(module: Any, store: list[tuple[Any, ...]]) -> Any:
    """Record the tensor arguments of each call of ``module`` (positional, then keyword)."""
    import torch

    def hook(mod: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        values = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        store.append(tuple(v.detach() for v in values))

    return module.register_forward_pre_hook(hook, with_kwargs=True)


# --- BERT-style encoders ----------------------------------------------------------------
def find_encoder_layers(module: Any) -> list[tuple[str, Any]]:
    """Submodules shaped like a BERT layer, in order, as (qualified name, layer)."""
    import torch

    found = []
    for name, sub in module.named_modules():
        attention = getattr(sub, "attention", None)
        self_attention = getattr(attention, "self", None)
        ok = (
            self_attention is not None
            and all(isinstance(getattr(self_attention, n, None), torch.nn.Linear) for n in ("query", "key", "value"))
            and isinstance(getattr(getattr(attention, "output", None), "dense", None), torch.nn.Linear)
            and isinstance(getattr(getattr(sub, "intermediate", None), "dense", None), torch.nn.Linear)
            and isinstance(getattr(getattr(sub, "output", None), "dense", None), torch.nn.Linear)
            and hasattr(self_attention, "attention_head_size")
        )
        if ok:
            found.append((name, sub))
    return found


def _linear(weight: Any, bias: Any | None) -> Any:
    import torch

    layer = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    layer.weight = torch.nn.Parameter(weight.contiguous().clone())
    if bias is not None:
        layer.bias = torch.nn.Parameter(bias.contiguous().clone())
    return layer


def _capture_encoder(model: Any, layer: Any, calibration: Sequence[tuple[Any, ...]]) -> dict[str, Any]:
    """Per-token tensors around one encoder layer, over all calibration batches."""
    import torch

    att_in: list[tuple[Any, ...]] = []
    ffn_in: list[tuple[Any, ...]] = []
    hooks = [_hook_inputs(layer.attention.output, att_in), _hook_inputs(layer.output, ffn_in)]
    try:
        _run_all(model, calibration)
    finally:
        for h in hooks:
            h.remove()

    def flat(items: list[tuple[Any, ...]], i: int) -> Any:
        return torch.cat([t[i].reshape(-1, t[i].shape[-1]) for t in items], dim=0)

    out = {"ctx": flat(att_in, 0), "x": flat(att_in, 1), "a": flat(ffn_in, 0), "h1": flat(ffn_in, 1)}
    out["y1"] = layer.attention.output.dense(out["ctx"])
    out["y2"] = layer.output.dense(out["a"])
    return out


def _prune_encoder(
    teacher: Any,
    student: Any,
    layers: list[tuple[str, Any]],
    sparsity: float,
    calibration: Sequence[tuple[Any, ...]],
    reconstruct: bool,
) -> list[str]:
    import torch

    teacher_layers = dict(teacher.named_modules())
    generator = torch.Generator().manual_seed(0)
    structures = []
    for name, layer in layers:
        t = _capture_encoder(teacher, teacher_layers[name], calibration)
        s = _capture_encoder(student, layer, calibration)
        rows = _subsample(s["ctx"].shape[0], generator)
        # attention heads
        sa = layer.attention.self
        head = int(sa.attention_head_size)
        heads = s["ctx"].shape[1] // head
        cut = min(heads - 1, int(math.floor(sparsity * heads + 1e-9)))  # heads are coarse: round down
        out_dense = layer.attention.output.dense
        if cut > 0:
            ctx = s["ctx"][rows]
            wo = out_dense.weight
            scores = []
            for h in range(heads):
                part = ctx[:, h * head : (h + 1) * head] @ wo[:, h * head : (h + 1) * head].T
                scores.append(float(part.pow(2).sum(dim=1).mean()))
            keep = sorted(sorted(range(heads), key=lambda h: -scores[h])[: heads - cut])
            idx = torch.cat([torch.arange(h * head, (h + 1) * head) for h in keep])
            for proj in ("query", "key", "value"):
                lin = getattr(sa, proj)
                setattr(sa, proj, _linear(lin.weight[idx], None if lin.bias is None else lin.bias[idx]))
            if hasattr(sa, "num_attention_heads"):
                sa.num_attention_heads = len(keep)
            if hasattr(sa, "all_head_size"):
                sa.all_head_size = len(idx)
            w0, b0 = out_dense.weight[:, idx], out_dense.bias
            if reconstruct:
                target = (t["y1"] + t["x"] - s["x"])[rows]
                w0, b0 = _fit_linear(ctx[:, idx], target, w0, b0)
            layer.attention.output.dense = _linear(w0, b0)
            structures.append(f"{name}: {heads} -> {len(keep)} attention heads")
            s = _capture_encoder(student, layer, calibration)
        # MLP hidden units
        inter, out = layer.intermediate.dense, layer.output.dense
        units = inter.out_features
        cut = units - aligned_keep(units, sparsity, ALIGN_UNITS)
        if cut > 0:
            a = s["a"][rows]
            scores_t = a.pow(2).mean(dim=0) * out.weight.pow(2).sum(dim=0)
            keep_t = torch.argsort(scores_t, descending=True)[: units - cut].sort().values
            layer.intermediate.dense = _linear(inter.weight[keep_t], None if inter.bias is None else inter.bias[keep_t])
            w0, b0 = out.weight[:, keep_t], out.bias
            if reconstruct:
                target = (t["y2"] + t["h1"] - s["h1"])[rows]
                w0, b0 = _fit_linear(a[:, keep_t], target, w0, b0)
            layer.output.dense = _linear(w0, b0)
            structures.append(f"{name}: {units} -> {len(keep_t)} MLP hidden units")
    config = getattr(student, "config", None)
    if config is not None and hasattr(config, "pruned_heads"):
        config.pruned_heads = {}
    return structures


# --- producer -> consumer chains (CNNs, MLPs) ------------------------------------------------
_PER_CHANNEL_MODULES = (
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNorm3d",
    "InstanceNorm1d",
    "InstanceNorm2d",
    "InstanceNorm3d",
    "ReLU",
    "ReLU6",
    "GELU",
    "SiLU",
    "LeakyReLU",
    "ELU",
    "PReLU",
    "Sigmoid",
    "Tanh",
    "Hardswish",
    "Hardtanh",
    "Mish",
    "MaxPool1d",
    "MaxPool2d",
    "MaxPool3d",
    "AvgPool1d",
    "AvgPool2d",
    "AvgPool3d",
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AdaptiveAvgPool3d",
    "AdaptiveMaxPool1d",
    "AdaptiveMaxPool2d",
    "AdaptiveMaxPool3d",
    "Dropout",
    "Dropout1d",
    "Dropout2d",
    "Dropout3d",
    "Identity",
)
#: Per-channel modules that need a spatial layout (channels on axis 1): not after a Linear.
_SPATIAL = tuple(m for m in _PER_CHANNEL_MODULES if m.endswith(("1d", "2d", "3d")) and m != "BatchNorm1d")


def _conv_types() -> tuple[Any, ...]:
    import torch

    return (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)


@dataclass
class _Chain:
    producer: str
    between: list[str]
    consumer: str
    per_channel: int  # consumer input features per producer channel (flatten), else 1
    flattened: bool


def _fn_names() -> set[str]:
    return {
        "relu",
        "relu6",
        "gelu",
        "silu",
        "sigmoid",
        "tanh",
        "leaky_relu",
        "elu",
        "hardswish",
        "max_pool1d",
        "max_pool2d",
        "max_pool3d",
        "avg_pool1d",
        "avg_pool2d",
        "avg_pool3d",
        "adaptive_avg_pool1d",
        "adaptive_avg_pool2d",
        "adaptive_avg_pool3d",
        "adaptive_max_pool1d",
        "adaptive_max_pool2d",
        "adaptive_max_pool3d",
        "dropout",
        "mish",
    }


def find_chains(module: Any, sample: tuple[Any, ...]) -> list[_Chain]:
    """Producer → per-channel ops → consumer chains whose channels can be removed."""
    import torch
    from torch.fx import symbolic_trace
    from torch.fx.passes.shape_prop import ShapeProp

    try:
        graph_module = symbolic_trace(module)
    except Exception as exc:
        raise NotPrunable(f"module is not torch.fx-traceable ({type(exc).__name__}: {str(exc)[:120]})") from exc
    ShapeProp(graph_module).propagate(*sample)
    modules = dict(graph_module.named_modules())
    fn_names = _fn_names()

    def kind(node: Any) -> str:
        if node.op == "call_module":
            return str(type(modules[node.target]).__name__)
        if node.op in ("call_function", "call_method"):
            return str(getattr(node.target, "__name__", node.target))
        return str(node.op)

    chains = []
    for node in graph_module.graph.nodes:
        if node.op != "call_module":
            continue
        producer = modules[node.target]
        is_conv = isinstance(producer, _conv_types()) and producer.groups == 1
        if not (is_conv or isinstance(producer, torch.nn.Linear)):
            continue
        channels = producer.out_channels if is_conv else producer.out_features
        out_meta = node.meta.get("tensor_meta")
        if out_meta is None:
            continue
        if not is_conv and len(out_meta.shape) != 2:
            continue  # Linear on sequences: channel axis is last, per-channel ops would not line up
        between: list[str] = []
        cur = node
        per_channel, flattened = 1, False
        while True:
            users = list(cur.users)
            if len(users) != 1:
                break
            user = users[0]
            k = kind(user)
            if user.op == "call_module" and k in _PER_CHANNEL_MODULES:
                if not is_conv and k in _SPATIAL:
                    break
                if k == "PReLU" and modules[user.target].num_parameters not in (1, channels):
                    break
                if flattened and k != "Identity" and not k.startswith("Dropout"):
                    break
                between.append(user.target)
                cur = user
                continue
            if user.op in ("call_function", "call_method") and k in fn_names and user.args[0] is cur:
                if flattened and k != "dropout":
                    break
                cur = user
                continue
            if is_conv and not flattened and _is_flatten(user, modules) and user.args[0] is cur:
                shape = cur.meta["tensor_meta"].shape
                per_channel = int(math.prod(shape[2:]))
                flattened = True
                cur = user
                continue
            if user.op == "call_module" and user.args and user.args[0] is cur and len(user.args) == 1:
                consumer = modules[user.target]
                conv_ok = (type(consumer) is type(producer) and is_conv and consumer.groups == 1 and not flattened)
                linear_ok = isinstance(consumer, torch.nn.Linear) and is_conv == flattened
                if conv_ok and consumer.in_channels == channels:
                    chains.append(_Chain(node.target, between, user.target, 1, False))
                elif linear_ok and consumer.in_features == channels * per_channel:
                    chains.append(_Chain(node.target, between, user.target, per_channel, flattened))
            break
    return chains


def _is_flatten(node: Any, modules: dict[str, Any]) -> bool:
    import torch

    if node.op == "call_module":
        mod = modules[node.target]
        return isinstance(mod, torch.nn.Flatten) and mod.start_dim == 1 and mod.end_dim == -1
    if node.op == "call_function" and node.target is torch.flatten:
        start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
        return start == 1 and len(node.args) <= 2
    if node.op == "call_method" and node.target == "flatten":
        start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
        return start == 1 and len(node.args) <= 2
    return False


def _prune_chains(
    teacher: Any, student: Any, sparsity: float, calibration: Sequence[tuple[Any, ...]], reconstruct: bool
) -> list[str]:
    import torch

    sample = tuple(a[:2] for a in calibration[0])
    chains = find_chains(student, sample)
    if not chains:
        raise NotPrunable(
            "found no prunable structure (no BERT-style layers, and no Conv1d/2d/3d or Linear whose output "
            "feeds exactly one convolution of the same kind or Linear through per-channel operations)"
        )
    t_modules = dict(teacher.named_modules())
    generator = torch.Generator().manual_seed(0)
    structures = []
    for chain in chains:
        s_modules = dict(student.named_modules())
        producer, consumer = s_modules[chain.producer], s_modules[chain.consumer]
        is_conv = isinstance(producer, _conv_types())
        channels = producer.out_channels if is_conv else producer.out_features
        cut = channels - aligned_keep(channels, sparsity, ALIGN_CHANNELS)
        if cut <= 0:
            continue
        s_in: list[tuple[Any, ...]] = []
        t_out: list[Any] = []
        hooks = [_hook_inputs(consumer, s_in)]
        _run_all(student, calibration)
        hooks[0].remove()
        t_hook = t_modules[chain.consumer].register_forward_hook(_recorder(t_out))
        _run_all(teacher, calibration)
        t_hook.remove()
        x = torch.cat([t[0] for t in s_in], dim=0)
        y = torch.cat(t_out, dim=0)
        # importance: mean squared input of each channel x squared norm of the weights reading it
        w = consumer.weight
        if isinstance(consumer, _conv_types()):
            energy = x.pow(2).mean(dim=(0, *range(2, x.ndim)))
            reads = w.pow(2).sum(dim=(0, *range(2, w.ndim)))
        else:
            k = chain.per_channel
            energy = x.pow(2).mean(dim=0).reshape(channels, k).sum(dim=1)
            reads = w.pow(2).sum(dim=0).reshape(channels, k).sum(dim=1)
        keep = torch.argsort(energy * reads, descending=True)[: channels - cut].sort().values
        _cut_producer(producer, keep)
        for name in chain.between:
            _cut_per_channel(s_modules[name], keep)
        if isinstance(consumer, _conv_types()):
            new_w, new_b = w[:, keep], consumer.bias
            if reconstruct:
                new_w, new_b = _refit_conv(consumer, x[:, keep], y, new_w, generator)
            consumer.weight = torch.nn.Parameter(new_w.contiguous())
            if new_b is not None:
                consumer.bias = torch.nn.Parameter(new_b.detach().contiguous())
            consumer.in_channels = len(keep)
        else:
            cols = (keep[:, None] * chain.per_channel + torch.arange(chain.per_channel)[None, :]).reshape(-1)
            new_w, new_b = w[:, cols], consumer.bias
            if reconstruct:
                rows = _subsample(x.shape[0], generator)
                new_w, new_b = _fit_linear(x[rows][:, cols], y[rows], new_w, new_b)
                if new_b is not None:
                    consumer.bias = torch.nn.Parameter(new_b)
            consumer.weight = torch.nn.Parameter(new_w.contiguous())
            consumer.in_features = len(cols)
        structures.append(f"{chain.producer} -> {chain.consumer}: {channels} -> {len(keep)} channels")
    return structures


def _recorder(store: list[Any]) -> Callable[[Any, Any, Any], None]:
    def hook(module: Any, args: Any, output: Any) -> None:
        store.append(output.detach())

    return hook


def _cut_producer(producer: Any, keep: Any) -> None:
    import torch

    producer.weight = torch.nn.Parameter(producer.weight[keep].contiguous())
    if producer.bias is not None:
        producer.bias = torch.nn.Parameter(producer.bias[keep].contiguous())
    if isinstance(producer, _conv_types()):
        producer.out_channels = len(keep)
    else:
        producer.out_features = len(keep)


def _cut_per_channel(module: Any, keep: Any) -> None:
    import torch

    if isinstance(module, torch.nn.modules.batchnorm._NormBase):  # BatchNorm and InstanceNorm
        if module.weight is not None:
            module.weight = torch.nn.Parameter(module.weight[keep].contiguous())
            module.bias = torch.nn.Parameter(module.bias[keep].contiguous())
        if module.running_mean is not None and module.running_var is not None:
            module.running_mean = module.running_mean[keep].contiguous()
            module.running_var = module.running_var[keep].contiguous()
        module.num_features = len(keep)
    elif isinstance(module, torch.nn.PReLU) and module.num_parameters > 1:
        module.weight = torch.nn.Parameter(module.weight[keep].contiguous())
        module.num_parameters = len(keep)


def _refit_conv(conv: Any, x: Any, y: Any, w0: Any, generator: Any) -> tuple[Any, Any | None]:
    """Least-squares refit of a convolution's weights (and bias, if it has one) on its input patches."""
    import torch
    import torch.nn.functional as F

    if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        return w0, conv.bias
    if isinstance(conv, torch.nn.Conv2d):
        patches = F.unfold(x, conv.kernel_size, dilation=conv.dilation, padding=conv.padding, stride=conv.stride)
        cols = patches.transpose(1, 2).reshape(-1, patches.shape[1])  # (N*L, Cin*kh*kw)
        target = y.permute(0, 2, 3, 1).reshape(-1, y.shape[1])
        rows = _subsample(cols.shape[0], generator)
        cols, target = cols[rows], target[rows]
    else:
        cols, target = _sampled_patches(conv, x, y, generator)
    bias0 = None if conv.bias is None else conv.bias.detach()
    w, b = _fit_linear(cols, target, w0.reshape(w0.shape[0], -1), bias0)
    return w.reshape(w0.shape), b


def _sampled_patches(conv: Any, x: Any, y: Any, generator: Any) -> tuple[Any, Any]:
    """Input patches (rows, Cin * prod(kernel)) and outputs (rows, Cout) at up to MAX_FIT_ROWS random
    output positions of a Conv1d/Conv3d (any N-d convolution), gathered without unfolding it all."""
    import itertools

    import torch
    import torch.nn.functional as F

    dims = x.ndim - 2
    pad = [p for p in reversed(conv.padding) for _ in range(2)]
    xp = F.pad(x, pad)
    out_shape = y.shape[2:]
    total = y.shape[0] * math.prod(out_shape)
    m = min(total, MAX_FIT_ROWS)
    flat = torch.randperm(total, generator=generator)[:m] if total > m else torch.arange(total)
    index = []
    for size in reversed((y.shape[0], *out_shape)):
        index.append(flat % size)
        flat = flat // size
    n_idx, *o_idx = reversed(index)
    gathered = []
    for offset in itertools.product(*(range(k) for k in conv.kernel_size)):
        at = [o * conv.stride[d] + offset[d] * conv.dilation[d] for d, o in enumerate(o_idx)]
        gathered.append(xp[(n_idx, slice(None), *at)])  # (m, Cin)
    cols = torch.stack(gathered, dim=2).reshape(m, -1)  # (m, Cin * prod(kernel)), weight order
    target = y[(n_idx, slice(None), *o_idx)]
    assert dims == len(o_idx)
    return cols, target
