"""Neural explanations through Captum: integrated gradients for a TabularNet (per input column, served as method
``integrated_gradients``) and over the tokens of a TextTransformer, its attention maps, GradCAM for a DigitsCNN, and
one offline HTML page that shows them.

Integrated gradients attribute ``F(x) − F(baseline)`` along the straight path between the two; the sum of the
attributions equals that difference up to Captum's convergence delta, reported with every row. A TabularNet is
explained on its embedded input (standardised numbers, then each category's embedding), so a categorical column's
attribution is the sum over its embedding's dimensions; its baseline is the mean embedded background row (the
training rows kept with a registered version), or zeros without one. PyTorch and Captum load on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mloop.errors import InvalidInput
from mloop.explain._explainers import Explanations

if TYPE_CHECKING:
    import torch

STEPS = 50  # points on the path from the baseline (Gauss-Legendre): deltas here stayed under 1% of output − base
MAX_BATCH = 8192  # rows × steps evaluated at once
MAX_SHOWN = 48  # tokens per attention map, rows per section on the HTML page


@dataclass(frozen=True)
class GradientExplanations(Explanations):
    """Explanations from integrated gradients: ``deltas[i]`` is Captum's convergence delta for row i,
    Σ attributions − (output − base value), so ``additivity_error()`` is its largest magnitude."""

    deltas: np.ndarray | None = None
    baseline: str = "zeros"

    def rows(self) -> list[dict[str, Any]]:
        out = super().rows()
        for entry, delta in zip(out, [] if self.deltas is None else self.deltas.tolist(), strict=False):
            entry["convergence_delta"] = float(delta)
        return out


def _device(net: Any) -> Any:
    return next(net.parameters()).device


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float64)


def _batch(rows: int, steps: int) -> int:
    """Captum's internal batch: whole rows, at least two steps each (fewer makes it warn and change it)."""
    return rows * max(2, min(steps, MAX_BATCH // max(rows, 1)))


class IntegratedGradientsExplainer:
    """Integrated gradients of a TabularNet's output — a binary net's log-odds (logit 1 − logit 0), else the logit of
    each row's top class — to its input columns, from ``background``'s mean embedded row (or zeros)."""

    method = "integrated-gradients"

    def __init__(self, net: Any, columns: list[str], *, background: pd.DataFrame | None = None, steps: int = STEPS) -> None:
        if not all(hasattr(net, a) for a in ("numeric", "categorical", "embeddings", "blocks", "head", "encode")):
            raise InvalidInput(f"Integrated gradients explain a TabularNet (mloop.training); {type(net).__name__} is not one. "
                               "Use method auto, permutation, kernel or lime.", field="method")
        inputs = [*net.numeric, *net.categorical]
        if sorted(columns) != sorted(inputs):
            raise InvalidInput(f"The columns {columns} are not the network's inputs {inputs}.", field="columns")
        import torch

        self.net, self.columns, self.steps = net, list(columns), steps
        self.binary = net.classes == 2
        self.output = "log-odds" if self.binary else "logit"
        self.spans: dict[str, tuple[int, int]] = {c: (i, i + 1) for i, c in enumerate(net.numeric)}
        start = len(net.numeric)
        for col, emb in zip(net.categorical, net.embeddings, strict=True):
            self.spans[col] = (start, start + emb.embedding_dim)
            start += emb.embedding_dim
        if background is not None and len(background):
            self.baseline = self._embed(background).mean(dim=0, keepdim=True)
            self.baseline_kind = f"mean of {len(background)} background rows"
        else:
            self.baseline, self.baseline_kind = torch.zeros((1, start), device=_device(net)), "zeros"

    def _embed(self, frame: pd.DataFrame) -> torch.Tensor:
        """The rows as the network's first layer sees them: standardised numbers (missing as the mean), then embeddings."""
        import torch

        net, device = self.net, _device(self.net)
        num, cat = (t.to(device) for t in net.encode(frame))
        with torch.no_grad():
            parts = [torch.where(torch.isnan(num), torch.zeros_like(num), (num - net.mean) / net.std)] if net.numeric else []
            parts.extend(e(cat[:, i]) for i, e in enumerate(net.embeddings))
            return torch.cat(parts, dim=1)

    def _head(self, z: torch.Tensor) -> torch.Tensor:
        for block in self.net.blocks:
            z = block(z)
        logits = self.net.head(z)
        return logits[:, 1] - logits[:, 0] if self.binary else logits  # type: ignore[no-any-return]

    def explain(self, frame: pd.DataFrame) -> GradientExplanations:
        import torch
        from captum.attr import IntegratedGradients

        self.net.eval()
        z = self._embed(frame)
        with torch.no_grad():
            raw, base_raw = self._head(z), self._head(self.baseline)
        picked = None if self.binary else raw.argmax(dim=1)
        attr, delta = IntegratedGradients(self._head).attribute(
            z, baselines=self.baseline.expand_as(z), target=picked, n_steps=self.steps, internal_batch_size=_batch(len(z), self.steps),
            return_convergence_delta=True)
        values, raw_, base_ = _numpy(attr), _numpy(raw), _numpy(base_raw)
        columns = np.column_stack([values[:, slice(*self.spans[c])].sum(axis=1) for c in self.columns])
        if picked is None:
            outputs, base, classes = raw_, np.full(len(z), base_[0]), ["1"] * len(z)
        else:
            k = picked.cpu().numpy()
            outputs, base, classes = raw_[np.arange(len(z)), k], base_[0, k], [str(int(c)) for c in k]
        return GradientExplanations(self.columns, base, outputs, columns, self.method, self.output, classes, None, _numpy(delta), self.baseline_kind)


def integrated_gradients(net: Any, rows: pd.DataFrame, *, background: pd.DataFrame | None = None, steps: int = STEPS) -> GradientExplanations:
    """Integrated gradients of a TabularNet over ``rows`` (``explain(model, rows, method="integrated_gradients")`` for a
    registered version, whose background is its kept training rows)."""
    columns = [*getattr(net, "numeric", []), *getattr(net, "categorical", [])]
    return IntegratedGradientsExplainer(net, columns, background=background, steps=steps).explain(rows)


# -- texts -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TokenAttributions:
    """Per text: its tokens as the network reads them (``<cls>`` left out), each token's integrated gradient on the
    explained class's logit, that logit, its value at the baseline (every word replaced by padding, the text's own
    attention mask kept) and Captum's delta: ``base_values + Σ attributions = outputs + deltas``."""

    tokens: list[list[str]]
    attributions: list[np.ndarray]
    outputs: np.ndarray
    base_values: np.ndarray
    deltas: np.ndarray
    classes: list[str]

    def additivity_error(self) -> float:
        sums = np.array([a.sum() for a in self.attributions])
        return float(np.abs(self.base_values + sums - self.outputs).max()) if len(sums) else 0.0


def _class_index(net: Any, target: int | str | None) -> int | None:
    if target is None or isinstance(target, int):
        if isinstance(target, int) and not 0 <= target < net.classes:
            raise InvalidInput(f"target must be a class index 0..{net.classes - 1}, got {target}.", field="target")
        return target
    names = getattr(net, "labels", None) or []
    if target not in names:
        raise InvalidInput(f"Unknown class {target!r}. Valid: {', '.join(names) or 'class indices'}.", field="target")
    return list(names).index(target)


def _class_name(net: Any, k: int) -> str:
    names = getattr(net, "labels", None)
    return str(names[k]) if names else str(k)


def token_attributions(net: Any, texts: Any, *, target: int | str | None = None, steps: int = STEPS) -> TokenAttributions:
    """Layer integrated gradients on a TextTransformer's token embedding for ``texts`` (a frame with its text column,
    or strings), explaining ``target`` (a class index or name; default each text's top class). Captum replaces the
    embedding's output through a hook while it runs: not for a network that is scoring in another thread meanwhile."""
    import torch
    from captum.attr import LayerIntegratedGradients

    texts = net.texts_of(texts)
    ids = net.encode(texts).to(_device(net))
    pad = ids == 0
    baseline = torch.where(ids == 2, ids, torch.zeros_like(ids))  # <cls> kept, every word (and <unk>) becomes <pad>
    net.eval()
    with torch.no_grad():
        logits, base_logits = net.logits(ids, pad), net.logits(baseline, pad)
    k = _class_index(net, target)
    picked = logits.argmax(dim=1) if k is None else torch.full((len(ids),), k, dtype=torch.int64, device=ids.device)
    lig = LayerIntegratedGradients(net.logits, net.token_embedding)
    attr, delta = lig.attribute(ids, baselines=baseline, target=picked, additional_forward_args=(pad,), n_steps=steps,
                                internal_batch_size=_batch(len(ids), steps), return_convergence_delta=True)
    per_token, rows, chosen = _numpy(attr.sum(dim=-1)), np.arange(len(ids)), picked.cpu().numpy()
    tokens = [net.tokens(t)[1:] for t in texts]
    return TokenAttributions(tokens, [per_token[i, 1 : 1 + len(tokens[i])] for i in rows], _numpy(logits)[rows, chosen],
                             _numpy(base_logits)[rows, chosen], _numpy(delta), [_class_name(net, int(c)) for c in chosen])


@dataclass(frozen=True)
class AttentionMaps:
    """A text's attention: ``weights[layer, head, q, k]`` is how much token q attends to token k (each row sums to 1);
    ``tokens`` start with ``<cls>``."""

    tokens: list[str]
    weights: np.ndarray

    @property
    def mean(self) -> np.ndarray:
        """Averaged over the heads: ``(layers, tokens, tokens)``."""
        return self.weights.mean(axis=1)  # type: ignore[no-any-return]


def attention_maps(net: Any, text: str) -> AttentionMaps:
    """The attention weights of every layer and head of a TextTransformer reading ``text``."""
    import torch

    ids = net.encode([text]).to(_device(net))
    net.eval()
    for block in net.blocks:
        block.keep = True
    try:
        with torch.inference_mode():
            net.logits(ids, ids == 0)
        weights = np.stack([_numpy(block.weights[0]) for block in net.blocks])
    finally:
        for block in net.blocks:
            block.keep, block.weights = False, None
    return AttentionMaps(net.tokens(text), weights)


# -- images ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GradCam:
    """GradCAM per image: ``coarse`` at the last conv block's resolution, ``heatmaps`` upsampled (bilinear) to the
    image, both ≥ 0 (the ReLU of the gradient-weighted channels); the class explained and its probability."""

    images: np.ndarray
    heatmaps: np.ndarray
    coarse: np.ndarray
    classes: list[str]
    probabilities: np.ndarray


def grad_cam(net: Any, rows: Any, *, target: int | None = None) -> GradCam:
    """Captum's ``LayerGradCam`` on a DigitsCNN's last conv block for ``rows`` (a frame of pixel columns, or an array of
    rows or images), explaining ``target`` (default each image's top class)."""
    import torch
    from captum.attr import LayerAttribution, LayerGradCam

    x = net.pixels(rows).to(_device(net))
    net.eval()
    with torch.no_grad():
        proba = torch.softmax(net(x), dim=1)
    k = _class_index(net, target)
    picked = proba.argmax(dim=1) if k is None else torch.full((len(x),), k, dtype=torch.int64, device=x.device)
    cam = LayerGradCam(net, net.last).attribute(x, target=picked, relu_attributions=True).detach()
    up = LayerAttribution.interpolate(cam, (net.side, net.side), interpolate_mode="bilinear").clamp(min=0.0)
    chosen = picked.cpu().numpy()
    return GradCam(_numpy(x).reshape(-1, net.side, net.side), _numpy(up[:, 0]), _numpy(cam[:, 0]), [str(int(c)) for c in chosen],
                   _numpy(proba)[np.arange(len(x)), chosen])


# -- the page ----------------------------------------------------------------------------------------------------
def _colour(value: float, scale: float) -> str:
    """Red for positive, blue for negative, opacity by |value| / scale."""
    alpha = min(1.0, abs(value) / scale) if scale > 0 else 0.0
    return f"rgba(192,57,43,{alpha:.3f})" if value >= 0 else f"rgba(41,128,185,{alpha:.3f})"


def _tabular(ex: Explanations) -> list[dict[str, Any]]:
    scale = float(np.abs(ex.attributions).max()) or 1.0
    deltas = getattr(ex, "deltas", None)
    out = []
    for i in range(min(len(ex.outputs), MAX_SHOWN)):
        bars = [{"column": c, "value": float(v), "width": 125 * abs(float(v)) / scale, "positive": v >= 0}
                for c, v in sorted(zip(ex.columns, ex.attributions[i], strict=True), key=lambda cv: -abs(cv[1]))]
        out.append({"bars": bars, "base": float(ex.base_values[i]), "output": float(ex.outputs[i]),
                    "delta": None if deltas is None else float(deltas[i]), "cls": None if ex.classes is None else ex.classes[i]})
    return out


def _tokens(ta: TokenAttributions) -> list[dict[str, Any]]:
    out = []
    for i in range(min(len(ta.tokens), MAX_SHOWN)):
        scale = float(np.abs(ta.attributions[i]).max()) if len(ta.attributions[i]) else 1.0
        out.append({"cls": ta.classes[i], "output": float(ta.outputs[i]), "base": float(ta.base_values[i]), "delta": float(ta.deltas[i]),
                    "spans": [(t, float(v), _colour(float(v), scale)) for t, v in zip(ta.tokens[i], ta.attributions[i], strict=True)]})
    return out


def _attention(maps: AttentionMaps) -> list[dict[str, Any]]:
    n = min(len(maps.tokens), MAX_SHOWN)
    grids = []
    for layer in range(maps.weights.shape[0]):
        heads = [("mean of heads", maps.mean[layer])] + [(f"head {h + 1}", maps.weights[layer, h]) for h in range(maps.weights.shape[1])]
        maps_ = []
        for name, m in heads:  # shaded against the map's own largest weight: over many tokens every weight is small
            top = float(m[:n, :n].max()) or 1.0
            maps_.append({"name": name, "top": top, "cells": [(q, k, float(m[q, k]) / top) for q in range(n) for k in range(n)]})
        grids.append({"layer": layer + 1, "maps": maps_})
    return [{"tokens": maps.tokens[:n], "size": n, "total": len(maps.tokens), "layers": grids}]


def _cams(cams: GradCam) -> list[dict[str, Any]]:
    out = []
    for i in range(min(len(cams.images), MAX_SHOWN)):
        img, heat = cams.images[i], cams.heatmaps[i]
        top, hot = float(img.max()) or 1.0, float(heat.max()) or 1.0
        cells = [(r, c, 1.0 - float(img[r, c]) / top, float(heat[r, c]) / hot) for r in range(img.shape[0]) for c in range(img.shape[1])]
        out.append({"cls": cams.classes[i], "p": float(cams.probabilities[i]), "side": img.shape[0], "cells": cells})
    return out


def render_neural_html(*, tabular: Explanations | None = None, tokens: TokenAttributions | None = None, attention: AttentionMaps | None = None,
                       cams: GradCam | None = None, title: str = "Neural explanations") -> str:
    """One self-contained HTML page (inline CSS and SVG, nothing fetched) showing what is given: integrated-gradient
    bars per column, token attributions as coloured text, attention heat maps per layer and head, GradCAM over images."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    if tabular is None and tokens is None and attention is None and cams is None:
        raise InvalidInput("Give at least one of tabular, tokens, attention or cams to render.", field="tabular")
    env = Environment(loader=PackageLoader("mloop.explain", "templates"), autoescape=select_autoescape(["html", "j2"]))
    return env.get_template("neural.html.j2").render(
        title=title, tabular=_tabular(tabular) if tabular is not None else None, method=tabular.method if tabular is not None else "",
        output=tabular.output if tabular is not None else "", tokens=_tokens(tokens) if tokens is not None else None,
        attention=_attention(attention) if attention is not None else None, cams=_cams(cams) if cams is not None else None)
