"""Model cards in Hugging Face's format — Markdown with YAML front matter and a ``model-index`` of metrics — written
from the run's real metadata (data and its fingerprints, feature views, features, hyperparameters, metrics, lineage),
the model's global explanations, and the fields only a person can fill (``TrackedRun.describe``), each said to be
missing where it is. ``render_card_html`` gives the same card as one self-contained HTML page (no CDN)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

USER_FIELDS = {
    "intended_use": "Intended use",
    "out_of_scope": "Out-of-scope use",
    "limitations": "Limitations",
    "ethical_considerations": "Ethical considerations",
}
_MISSING = "_Not provided. Set it on the training run: `run.describe({field}=...)`._"


@dataclass
class CardData:
    """Everything a card shows; ``explanation`` is ``GlobalExplanation.to_dict()`` (or None when it could not be
    computed, with the reason in ``notes``)."""

    name: str
    version: int
    run_id: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    inputs: list[dict[str, Any]]
    manifest: dict[str, str]
    manifest_sha256: str
    created: float
    twin: dict[str, Any] | None = None
    features: dict[str, Any] | None = None
    explanation: dict[str, Any] | None = None
    flavour: str = ""
    estimator: str = ""
    notes: list[str] = field(default_factory=list)
    deployments: list[dict[str, Any]] = field(default_factory=list)
    evaluation: dict[str, Any] | None = None  # performance_report on the labelled rows kept with the model

    def user(self, key: str) -> str | None:
        value = self.tags.get(f"mloop.card.{key}")
        return value if value else None

    @property
    def datasets(self) -> list[tuple[str, str, str, str]]:
        """(context, name, rows, sha256) of each dataset the run logged."""
        contexts = sorted({k.split(".")[2] for k in self.tags if k.startswith("mloop.dataset.")})
        return [(c, self.tags.get(f"mloop.dataset.{c}.name", "?"), self.tags.get(f"mloop.dataset.{c}.rows", "?"),
                 self.tags.get(f"mloop.dataset.{c}.sha256", "?")) for c in contexts]

    @property
    def task(self) -> str:
        output = (self.explanation or {}).get("output", "")
        return "tabular-regression" if output in ("prediction", "link") else "tabular-classification"

    @property
    def when(self) -> str:
        return dt.datetime.fromtimestamp(self.created, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _table(rows: Sequence[tuple[str, ...]], header: tuple[str, ...]) -> list[str]:
    if not rows:
        return ["_none recorded_", ""]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def front_matter(card: CardData) -> dict[str, Any]:
    """Hugging Face's card metadata: library, tags, license and a ``model-index`` with the run's metrics."""
    library = {"sklearn": "sklearn", "lightgbm": "lightgbm", "xgboost": "xgboost"}.get(card.flavour, card.flavour or "mlflow")
    dataset = card.datasets[0][1] if card.datasets else "unrecorded"
    meta: dict[str, Any] = {
        "library_name": library,
        "tags": ["mloop", card.task, *([f"feature-view:{v['name']}" for v in (card.features or {}).get("views", [])])],
        "license": card.user("license") or "other",
        "model_name": card.name,
        "model-index": [{
            "name": f"{card.name}-v{card.version}",
            "results": [{
                "task": {"type": card.task},
                "dataset": {"name": dataset, "type": dataset},
                "metrics": [{"type": k, "name": k, "value": float(v)} for k, v in sorted(card.metrics.items())],
            }],
        }],
    }
    return meta


def _feature_views(features: dict[str, Any]) -> list[str]:
    """The feature store's views (name, version, features) the model's training data was joined from."""
    services = ", ".join(f"`{s['name']}` v{s['version']}" for s in features.get("services", []))
    lines = ["### Feature views", "", "Trained on the feature store's point-in-time join"
             + (f" of feature service {services}." if services else "."), ""]
    rows = [(str(v["name"]), f"v{v['version']}", ", ".join(v.get("features", []))) for v in features.get("views", [])]
    return lines + _table(rows, ("view", "version", "features"))


def _explanations(card: CardData) -> list[str]:
    ex = card.explanation
    lines = ["## Explanations", ""]
    if not ex:
        return [*lines, "_No global explanation: " + ("; ".join(card.notes) or "the model kept no training rows") + "._", ""]
    lines += [f"Computed at registration on {ex['rows']} rows of the training data kept with the model"
              + (f"; attributions by `{ex['method']}` on the {ex['output']} scale." if ex["mean_abs_shap"] else "."), ""]
    perm = ex.get("permutation") or {}
    own = ex.get("model_importance") or {}
    shap = ex["mean_abs_shap"]
    ranking = shap or {c: p["value"] for c, p in perm.items()}
    order = sorted(ranking, key=lambda c: -ranking[c])
    header = ("input column", *(["mean abs SHAP"] if shap else []), *(["model's own importance"] if own else []),
              *([f"permutation importance ({ex.get('permutation_metric')}, 95 % CI)"] if perm else []))
    rows = []
    for c in order:
        row = [c, *([f"{shap[c]:.4f}"] if shap else [])]
        if own:
            row.append(f"{own.get(c, 0.0):.4f}")
        if perm:
            p = perm[c]
            row.append(f"{p['value']:.4f} [{p['low']:.4f}, {p['high']:.4f}]")
        rows.append(tuple(row))
    lines += ["### Importance", "", *_table(rows, header)]
    if ex.get("dependence"):
        lines += ["### Partial dependence", "", "The model's average score as one column moves over its range, the others as they are:", ""]
        for d in ex["dependence"]:
            low, high = min(d["average"]), max(d["average"])
            at_low = d["grid"][d["average"].index(low)]
            at_high = d["grid"][d["average"].index(high)]
            lines.append(f"- `{d['column']}`: from {low:.3g} (at {at_low if d['categorical'] else f'{at_low:.4g}'}) "
                         f"to {high:.3g} (at {at_high if d['categorical'] else f'{at_high:.4g}'})")
        lines.append("")
    surrogate = ex.get("surrogate")
    if surrogate:
        lines += ["### Rules", "", f"A depth-{surrogate['depth']} tree fitted to the model's scores explains "
                  f"{max(surrogate['fidelity_r2'], 0.0):.0%} of their variance on rows it did not see (R² {surrogate['fidelity_r2']:.3f}):", ""]
        lines += [f"- {r}" for r in surrogate["rules"]] + [""]
    lines += [f"_{n}_" for n in ex.get("notes", [])] + ([""] if ex.get("notes") else [])
    return lines


def _interval(pair: list[float]) -> str:
    return f"[{pair[0]:.3f}, {pair[1]:.3f}]"


def _evaluation(card: CardData) -> list[str]:
    ev = card.evaluation
    if not ev:
        return []
    o = ev["overall"]
    lines = ["## Evaluation", "", f"On the {ev['rows']} labelled training rows kept with the model — in-sample, so optimistic; the "
             "metrics above come from the run (a holdout where it had one). A score ≥ 0.5 counts as positive.", ""]
    lines += _table([("AUC", f"{o['auc']:.4f}", f"{_interval(o['auc_ci'])} (bootstrap)"),
                     ("accuracy", f"{o['accuracy']:.4f}", f"{_interval(o['accuracy_ci'])} (Wilson)"),
                     ("Brier score", f"{o['brier']:.4f}", "")], ("metric", "value", "95 % interval"))
    scored = [s for s in ev["slices"] if "accuracy" in s]
    if scored:
        lines += ["### Slices", ""]
        lines += _table([(s["column"], str(s["value"]), str(s["rows"]), f"{s['accuracy']:.3f} {_interval(s['accuracy_ci'])}",
                          f"{s['auc']:.3f}", "worst" if s.get("worst") else "") for s in scored],
                        ("column", "slice", "rows", "accuracy [95 % CI]", "AUC", ""))
    if ev.get("fairness"):
        lines += ["### Fairness", ""]
        rows = []
        for column, f in ev["fairness"].items():
            rates = ", ".join(f"{g}: {m['selection_rate']:.2f}" for g, m in list(f["by_group"].items())[:8])
            rows.append((column, f"{f['demographic_parity_difference']:.3f}", f"{f['equalized_odds_difference']:.3f}", rates))
        lines += _table(rows, ("column", "demographic-parity difference", "equalised-odds difference", "selection rate by group"))
    return lines


def _measured_limits(card: CardData) -> list[str]:
    out = []
    for context, name, rows, _ in card.datasets:
        out.append(f"Trained on {rows} rows of `{name}` ({context}); rows unlike them (new categories, values outside their "
                   "range) are outside what it has seen.")
    surrogate = (card.explanation or {}).get("surrogate")
    if surrogate and surrogate["fidelity_r2"] < 0.5:
        out.append(f"Its behaviour is not summarised well by a few rules (surrogate R² {surrogate['fidelity_r2']:.2f}).")
    return out


def render_card(card: CardData) -> str:
    """The card as Markdown with YAML front matter (Hugging Face's format)."""
    lines = ["---", yaml.safe_dump(front_matter(card), sort_keys=False, allow_unicode=True).rstrip(), "---", "",
             f"# Model card: {card.name} v{card.version}", "",
             f"Registered {card.when} from run `{card.run_id}`" + (f"; a {card.estimator} ({card.flavour})." if card.estimator else "."), ""]
    for key in ("intended_use", "out_of_scope"):
        lines += [f"## {USER_FIELDS[key]}", "", card.user(key) or _MISSING.format(field=key), ""]

    lines += ["## Data", ""]
    lines += _table([(c, f"{n} — {r} rows, sha256 `{h[:16]}…`") for c, n, r, h in card.datasets], ("context", "dataset"))
    if card.features and card.features.get("views"):
        lines += _feature_views(card.features)

    lines += ["## Features", ""]
    sensitive = set((card.user("sensitive_features") or "").split(",")) - {""}
    lines += _table([(str(i["name"]), str(i["type"]) + (" (sensitive)" if i["name"] in sensitive else "")) for i in card.inputs],
                    ("feature", "type"))
    lines += ["## Parameters", ""]
    lines += _table(sorted(card.params.items()), ("parameter", "value"))
    lines += ["## Metrics", ""]
    lines += _table([(k, f"{v:.4f}") for k, v in sorted(card.metrics.items())], ("metric", "value"))
    lines += _evaluation(card)
    lines += _explanations(card)

    lines += ["## Limitations", "", card.user("limitations") or _MISSING.format(field="limitations"), ""]
    lines += [f"- {m}" for m in _measured_limits(card)] + [""]
    lines += ["## Ethical considerations", "", card.user("ethical_considerations") or _MISSING.format(field="ethical_considerations"), ""]
    if sensitive:
        lines += [f"Sensitive features declared: {', '.join(sorted(sensitive))}.", ""]
    if card.deployments:
        lines += ["## Deployments", ""]
        lines += _table([(str(d["name"]), str(d.get("alias", "")), str(d.get("when", "")), str(d.get("endpoint", ""))) for d in card.deployments],
                        ("deployment", "alias", "deployed", "endpoint"))

    lines += ["## Lineage", ""]
    tags = card.tags
    lineage_rows = [
        ("git commit", tags.get("mloop.code.commit") or "not in a git repository"),
        ("uncommitted changes", tags.get("mloop.code.dirty_sha256") or "none"),
        ("seed", tags.get("mloop.seed", "not set")),
        ("python", tags.get("mloop.env.python", "?")),
    ]
    if tags.get("mloop.parent"):  # an optimised variant: what it was made from, and how
        lineage_rows[:0] = [("parent model", tags["mloop.parent"]), ("optimisation", tags.get("mloop.optimization", "?"))]
    lineage_rows += sorted((k.removeprefix("mloop.env."), v) for k, v in tags.items() if k.startswith("mloop.env.") and k != "mloop.env.python")
    lines += _table(lineage_rows, ("what", "value"))

    lines += ["## Serving runtime", ""]
    twin = card.twin
    if twin and twin.get("onnx") and "parity" not in twin:
        lines += [f"Served through ONNX Runtime: {twin.get('reason', 'an ONNX graph')}.", ""]
    elif twin and twin.get("onnx"):
        lines += [f"ONNX twin `mloop/model.onnx` served through ONNX Runtime, native model as fallback; parity: {twin['parity']}.", ""]
    else:
        lines += [f"Served natively (no ONNX twin: {(twin or {}).get('reason', 'not built')}).", ""]

    lines += ["## Integrity", ""]
    lines += [f"Manifest SHA-256 `{card.manifest_sha256}` over {len(card.manifest)} files; loading verifies every file first.", ""]
    lines += _table([(f"`{k}`", f"`{v[:16]}…`") for k, v in sorted(card.manifest.items())], ("file", "sha256"))
    return "\n".join(lines)


def parse_front_matter(text: str) -> dict[str, Any]:
    """The YAML metadata of a card (``{}`` when it has none)."""
    if not text.startswith("---\n"):
        return {}
    end = text.find("\n---", 4)
    return dict(yaml.safe_load(text[4:end]) or {}) if end > 0 else {}
