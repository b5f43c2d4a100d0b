"""Model cards: Hugging Face's format (YAML front matter with a model-index), the fields a person fills and what
mloop measures beside them (global explanations from the training rows kept with the model), and the same card as
a self-contained HTML page in a real headless Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest

from mloop.errors import InvalidInput
from mloop.registry import parse_front_matter
from mloop.training import fit
from mloop.workspace import Workspace
from tests.browser import open_offline
from tests.conftest import TOY_SPEC, toy_frame

pytestmark = pytest.mark.slow  # each test trains, registers and explains a model


def _register(ws: Workspace, *, describe: dict | None = None, with_rows: bool = True) -> int:
    frame = toy_frame(seed=1)
    with ws.tracker.start_run("toy", seed=0) as run:
        run.log_dataset(frame, context="training", name="toy", targets="y")
        if describe:
            run.describe(**describe)
        model = fit(frame, TOY_SPEC, {"max_iter": 20}, 0)
        run.log_metrics({"valid_auc": 0.81})
        rows = frame[TOY_SPEC.features] if with_rows else frame[TOY_SPEC.features].head(5)
        uri = run.log_sklearn_model(model, rows, labels=frame["y"] if with_rows else None)
    version = ws.registry.register(uri, "toy").version
    ws.registry.wait_for_cards()  # the explanations are computed after register returns
    return version


def test_the_card_is_in_hugging_faces_format_with_what_was_measured(workspace: Workspace) -> None:
    version = _register(workspace, describe={"intended_use": "Ranking toy rows for review.", "sensitive_features": ["color"],
                                             "groups": ["x2"], "license": "apache-2.0"})
    card = workspace.registry.card("toy", version)
    meta = parse_front_matter(card)
    assert meta["library_name"] == "sklearn" and meta["license"] == "apache-2.0" and "tabular-classification" in meta["tags"]
    metrics = meta["model-index"][0]["results"][0]["metrics"]
    assert {"type": "valid_auc", "name": "valid_auc", "value": 0.81} in metrics
    assert "## Intended use\n\nRanking toy rows for review." in card
    assert "run.describe(limitations=...)" in card  # a field nobody filled says how to fill it
    assert "| color | string (sensitive) |" in card and "Sensitive features declared: color." in card
    # Global explanations, from the 500 training rows and labels kept with the model.
    assert "on 500 rows of the training data" in card and "`tree-shap` on the log-odds scale" in card
    importance = card[card.index("### Importance"):card.index("### Partial dependence")]
    first_row = importance.splitlines()[4]
    assert first_row.startswith("| x1 |") and "[" in first_row  # x1 first, with a permutation interval
    assert "### Rules" in card and "IF x1" in card and "R² " in card
    # Accuracy with intervals, per slice of the groups, and fairness across the sensitive column, on the kept rows.
    assert "## Evaluation" in card and "(bootstrap)" in card and "(Wilson)" in card
    slices = card[card.index("### Slices"):card.index("### Fairness")]
    assert slices.count("| x2 |") == 4  # four quantile bins of x2
    assert "| color | 0." in card[card.index("### Fairness"):]


def test_registration_does_not_wait_for_the_explanations(workspace: Workspace) -> None:
    frame = toy_frame(seed=1)
    with workspace.tracker.start_run("toy", seed=0) as run:
        uri = run.log_sklearn_model(fit(frame, TOY_SPEC, {"max_iter": 20}, 0), frame[TOY_SPEC.features], labels=frame["y"])
    version = workspace.registry.register(uri, "toy").version
    first = workspace.registry.card("toy", version)
    workspace.registry.wait_for_cards()
    final = workspace.registry.card("toy", version)
    assert "### Importance" in final and workspace.tracker.client.get_model_version("toy", str(version)).description == final
    assert first == final or "being computed" in first


def test_describe_refuses_unknown_fields(workspace: Workspace) -> None:
    with workspace.tracker.start_run("toy", seed=0) as run, pytest.raises(InvalidInput) as err:
        run.describe(intended_usage="typo")
    assert err.value.field == "intended_usage"


def test_a_model_without_training_rows_says_why_it_has_no_explanations(workspace: Workspace) -> None:
    version = _register(workspace, with_rows=False)
    card = workspace.registry.card("toy", version)
    assert "## Explanations" in card and "kept no training rows" in card


@pytest.mark.browser
def test_the_html_card_works_offline_in_chromium(workspace: Workspace) -> None:
    version = _register(workspace, describe={"intended_use": "Ranking toy rows."})
    path: Path = workspace.registry.card_html("toy", version)
    seen: dict = {}

    def inspect(page: object) -> None:
        seen["title"] = page.title()  # type: ignore[attr-defined]
        seen["svgs"] = page.locator("svg").count()  # type: ignore[attr-defined]
        seen["rules"] = page.locator("#rules li").count()  # type: ignore[attr-defined]
        seen["intended"] = page.locator("#intended_use").inner_text()  # type: ignore[attr-defined]
        seen["curves"] = page.locator("#dependence polyline").count()  # type: ignore[attr-defined]

    errors, requests = open_offline(path, inspect)
    assert errors == [] and all(r.startswith("file://") for r in requests)
    assert seen["title"].startswith("Model card: toy v")
    assert seen["svgs"] >= 3 and seen["rules"] >= 2 and seen["intended"] == "Ranking toy rows."
    assert seen["curves"] >= 4 * 21  # four columns, each its average and 20 rows' curves


def test_deploying_a_version_adds_the_deployment_to_its_card(workspace: Workspace) -> None:
    from tests.conftest import deploy

    version = _register(workspace)
    workspace.registry.set_alias("toy", "champion", version)
    deploy(workspace, "toy-live", "toy", "champion")
    card = workspace.registry.card("toy", version)
    assert "## Deployments" in card and "| toy-live | champion |" in card and "POST /v2/models/toy-live/infer" in card
    assert "### Importance" in card  # the explanations stay
