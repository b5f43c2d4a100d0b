"""Explanations: exact TreeSHAP from a tree model's own trees (faster than ``shap.TreeExplainer`` and right on
categorical splits), LightGBM's and XGBoost's native contributions, and SHAP's sampling explainers for anything
else — per-row attributions on the model's input columns that add up to its output. mloop's networks get Captum's
integrated gradients (per column for a TabularNet, per token for a TextTransformer), attention maps and GradCAM, with
an offline HTML page. Names load lazily, so ``import mloop.explain`` imports neither Numba, SHAP nor Captum."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mloop._lazy import lazy_names

if TYPE_CHECKING:
    from mloop.explain._explain import as_frame, explain, explainer_of
    from mloop.explain._explainers import OUTPUT_SCALES, Explainer, Explanations, explainer_for
    from mloop.explain._global import Dependence, GlobalExplanation, Importance, global_explanation
    from mloop.explain._neural import (
        AttentionMaps,
        GradCam,
        GradientExplanations,
        IntegratedGradientsExplainer,
        TokenAttributions,
        attention_maps,
        grad_cam,
        integrated_gradients,
        render_neural_html,
        token_attributions,
    )
    from mloop.explain._shift import AttributionShift, ColumnShift, attribution_shift
    from mloop.explain._surrogate import Rule, Surrogate, surrogate_tree
    from mloop.explain._trees import TreeEnsemble, is_tree_model, read_trees
    from mloop.explain._treeshap import tree_shap

_NEURAL = ("AttentionMaps", "GradCam", "GradientExplanations", "IntegratedGradientsExplainer", "TokenAttributions", "attention_maps", "grad_cam",
           "integrated_gradients", "render_neural_html", "token_attributions")
_WHERE: dict[str, str] = {
    **{n: "_explain" for n in ("as_frame", "explain", "explainer_of")},
    **{n: "_explainers" for n in ("OUTPUT_SCALES", "Explainer", "Explanations", "explainer_for")},
    **{n: "_trees" for n in ("TreeEnsemble", "is_tree_model", "read_trees")},
    "tree_shap": "_treeshap",
    **{n: "_global" for n in ("Dependence", "GlobalExplanation", "Importance", "global_explanation")},
    **{n: "_surrogate" for n in ("Rule", "Surrogate", "surrogate_tree")},
    **{n: "_shift" for n in ("AttributionShift", "ColumnShift", "attribution_shift")},
    **{n: "_neural" for n in _NEURAL},
}
__all__ = ["OUTPUT_SCALES", "AttentionMaps", "AttributionShift", "ColumnShift", "Dependence", "Explainer", "Explanations", "GlobalExplanation",
           "GradCam", "GradientExplanations", "Importance", "IntegratedGradientsExplainer", "Rule", "Surrogate", "TokenAttributions", "TreeEnsemble",
           "as_frame", "attention_maps", "attribution_shift", "explain", "explainer_for", "explainer_of", "global_explanation", "grad_cam",
           "integrated_gradients", "is_tree_model", "read_trees", "render_neural_html", "surrogate_tree", "token_attributions", "tree_shap"]
__getattr__ = lazy_names(__name__, _WHERE, globals())
