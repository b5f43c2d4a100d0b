"""Neural explanations through Captum: integrated gradients that add up to output minus baseline output within
Captum's delta and find the column (or token) that drives the label, attention rows that sum to 1, GradCAM on the
region that decides the class, the served route for a TabularNet, and the offline HTML page in real Chromium."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from mloop.errors import InvalidInput
from mloop.explain import attention_maps, explain, grad_cam, integrated_gradients, render_neural_html, token_attributions
from mloop.training import DigitsCNN, TabularNet, TrainConfig, Trainer, tabular_net, training_tensors
from mloop.workspace import Workspace
from tests.browser import open_offline
from tests.training.test_nets import keyword_net, keyword_texts

COLUMNS = ["x1", "x2", "x3", "color"]


def driven_frame(n: int, seed: int) -> pd.DataFrame:
    """x1 decides the label; x2, x3 and color are noise."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n), "x3": rng.normal(size=n),
                          "color": rng.choice(["red", "green", "blue"], n).astype(object)})
    frame["y"] = (2.5 * frame["x1"] + 0.2 * rng.normal(size=n) > 0).astype(int)
    return frame


@pytest.fixture(scope="module")
def tab() -> TabularNet:
    frame = driven_frame(1500, seed=0)
    net = tabular_net(frame, "y", hidden=(32, 16), seed=0)
    Trainer(TrainConfig(epochs=4, batch_size=64, lr=3e-3, progress=False)).fit(net, training_tensors(net, frame, "y"))
    return net


@pytest.fixture(scope="module")
def text_net() -> Any:
    return keyword_net()


CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=float)
RING = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=float)


def shape_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """8×8 images of faint noise with a bright 3×3 ring (class 0), a bright 3×3 cross (class 1), or nothing (class 2),
    anywhere: each class is decided by the one small region its shape is in."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 3, (n, 8, 8))
    labels = rng.integers(0, 3, n)
    for img, label in zip(images, labels, strict=True):
        if label < 2:
            r, c = rng.integers(0, 6, 2)
            img[r : r + 3, c : c + 3] = np.maximum(img[r : r + 3, c : c + 3], 16.0 * (RING, CROSS)[label])
    return images, labels


@pytest.fixture(scope="module")
def cnn() -> DigitsCNN:
    images, labels = shape_images(900, seed=0)
    torch.manual_seed(0)
    net = DigitsCNN(classes=3, channels=(8, 16, 16))
    Trainer(TrainConfig(epochs=4, batch_size=32, lr=5e-3, progress=False)).fit(net, (torch.tensor(images.reshape(900, 64), dtype=torch.float32),
                                                                                    torch.tensor(labels)))
    return net


def test_integrated_gradients_add_up_within_the_delta_and_find_the_driving_column(tab: TabularNet) -> None:
    rows = driven_frame(60, seed=1)[COLUMNS]
    background = driven_frame(200, seed=2)[COLUMNS]
    result = explain(tab, rows, columns=COLUMNS, background=background, method="integrated_gradients")
    assert result.method == "integrated-gradients" and result.output == "log-odds" and result.columns == COLUMNS
    assert result.deltas is not None and result.baseline == "mean of 200 background rows"  # type: ignore[attr-defined]
    gap = result.base_values + result.attributions.sum(axis=1) - result.outputs
    np.testing.assert_allclose(gap, result.deltas, atol=1e-5)  # type: ignore[attr-defined]  # completeness, up to Captum's own delta
    assert np.abs(result.deltas).max() < 0.05 * np.abs(result.outputs - result.base_values).max()  # type: ignore[attr-defined]
    proba = tab.predict_proba(rows)
    np.testing.assert_allclose(result.outputs, np.log(proba[:, 1] / proba[:, 0]), atol=1e-4)  # the net's own log-odds
    assert np.allclose(result.base_values, result.base_values[0])  # one baseline for every row
    mean_abs = np.abs(result.attributions).mean(axis=0)
    assert mean_abs.argmax() == 0 and mean_abs[0] > 3 * mean_abs[1:].max()  # x1 decides the label
    entry = result.rows()[0]
    assert set(entry) == {"base_value", "output", "attributions", "class", "convergence_delta"} and entry["class"] == "1"


def test_without_background_the_baseline_is_zeros_and_many_classes_explain_a_logit() -> None:
    frame = driven_frame(300, seed=3)
    frame["y"] = np.digitize(frame["x1"], [-0.5, 0.5])  # three classes
    net = tabular_net(frame, "y", hidden=(16,), seed=0)
    Trainer(TrainConfig(epochs=2, batch_size=64, progress=False)).fit(net, training_tensors(net, frame, "y"))
    result = integrated_gradients(net, frame[COLUMNS].head(20))
    assert result.output == "logit" and result.baseline == "zeros"
    assert set(result.classes or []) <= {"0", "1", "2"}
    np.testing.assert_allclose(result.base_values + result.attributions.sum(axis=1) - result.outputs, result.deltas, atol=1e-5)  # type: ignore[arg-type]


def test_integrated_gradients_are_refused_for_other_models_by_field(tab: TabularNet) -> None:
    from sklearn.linear_model import LogisticRegression

    frame = driven_frame(100, seed=4)
    model = LogisticRegression().fit(frame[["x1", "x2"]], frame["y"])
    with pytest.raises(InvalidInput, match="not one") as err:
        explain(model, frame[["x1", "x2"]], method="integrated_gradients")
    assert err.value.field == "method"
    with pytest.raises(InvalidInput, match="not the network's inputs") as err:
        explain(tab, frame[["x1", "x2"]], columns=["x1", "x2"], method="integrated_gradients")
    assert err.value.field == "columns"


def test_token_attributions_add_up_and_the_keyword_weighs_most(text_net: Any) -> None:
    texts, labels = keyword_texts(15, seed=5)
    result = token_attributions(text_net, pd.DataFrame({"text": texts}))
    assert result.classes == [["negative", "positive", "neutral"][k] for k in labels]  # it reads them right
    gap = np.array([a.sum() for a in result.attributions]) + result.base_values - result.outputs
    np.testing.assert_allclose(gap, result.deltas, atol=1e-4)  # completeness, up to Captum's own delta
    assert np.abs(result.deltas).max() < 0.05 * np.abs(result.outputs - result.base_values).max()
    for tokens, values, label in zip(result.tokens, result.attributions, labels, strict=True):
        assert len(tokens) == 11
        if label < 2:  # the keyword weighs most, and for its class
            top = int(np.abs(values).argmax())
            assert tokens[top] == ("awful", "great")[label] and values[top] > 3 * np.abs(np.delete(values, top)).max()
    forced = token_attributions(text_net, texts[:2], target="positive")
    assert forced.classes == ["positive", "positive"]
    with pytest.raises(InvalidInput, match="Unknown class 'mixed'") as err:
        token_attributions(text_net, texts[:1], target="mixed")
    assert err.value.field == "target"


def test_attention_rows_sum_to_one(text_net: Any) -> None:
    text = keyword_texts(1, seed=6)[0][0] + " zebra"  # an unknown word too
    maps = attention_maps(text_net, text)
    assert maps.tokens[0] == "<cls>" and maps.tokens[-1] == "<unk>" and len(maps.tokens) == 13
    assert maps.weights.shape == (2, 4, 13, 13) and maps.mean.shape == (2, 13, 13)
    np.testing.assert_allclose(maps.weights.sum(axis=-1), 1.0, atol=1e-5)
    assert (maps.weights >= 0).all() and all(b.weights is None and not b.keep for b in text_net.blocks)  # nothing kept after


def test_grad_cam_lights_up_the_region_that_decides_the_class(cnn: DigitsCNN) -> None:
    images, labels = shape_images(300, seed=1)
    assert (cnn.predict(images) == labels).mean() >= 0.9
    probe = np.full((2, 8, 8), 1.0)
    probe[0, 0:3, 0:3] = 16.0 * CROSS  # a cross in the top-left corner: class 1
    probe[1, 5:8, 5:8] = 16.0 * RING  # a ring in the bottom-right corner: class 0
    cams = grad_cam(cnn, probe)
    assert cams.classes == ["1", "0"] and cams.heatmaps.shape == (2, 8, 8) and cams.coarse.shape == (2, 4, 4)
    assert (cams.heatmaps >= 0).all() and (cams.probabilities > 0.5).all()
    cross, ring = cams.heatmaps  # at half resolution and upsampled, the heat spreads a little: its peak is on the shape
    assert max(np.unravel_index(cross.argmax(), (8, 8))) <= 2 and cross[:4, :4].sum() > 3 * cross[4:, 4:].sum()
    assert min(np.unravel_index(ring.argmax(), (8, 8))) >= 5 and ring[4:, 4:].sum() > 3 * ring[:4, :4].sum()


@pytest.mark.slow
def test_the_served_route_explains_a_tabular_net_with_integrated_gradients(workspace: Workspace) -> None:
    from fastapi.testclient import TestClient

    from mloop.serving import create_app
    from mloop.training import mlp
    from tests.conftest import auth_headers, deploy, toy_frame

    frame = toy_frame(1200)
    with workspace.tracker.start_run("nets", seed=0) as run:
        model = mlp(frame, "y", hidden=[16], epochs=2, batch_size=64, run=run)
        uri = run.log_sklearn_model(model, frame.drop(columns="y"), labels=frame["y"])
    workspace.registry.register(uri, "net", alias="champion")
    deploy(workspace, "net", "net", "champion")
    rows = frame.drop(columns="y").head(4)
    body = {"dataframe_split": {"columns": list(rows.columns), "data": rows.to_numpy().tolist()}, "params": {"method": "integrated_gradients"}}
    with TestClient(create_app(workspace), headers=auth_headers(workspace)) as client:
        resp = client.post("/v2/models/net/explain", json=body)
        assert resp.status_code == 200, resp.text
        answer = resp.json()
        assert answer["method"] == "integrated-gradients" and answer["output"]["scale"] == "log-odds" and len(answer["explanations"]) == 4
        proba = np.asarray(client.post("/invocations", json={"dataframe_split": body["dataframe_split"]}).json()["predictions"])
        for entry, p in zip(answer["explanations"], proba, strict=True):
            assert set(entry["attributions"]) == {"x1", "x2", "x3", "color"} and entry["class"] == "1"
            gap = entry["base_value"] + sum(entry["attributions"].values()) - entry["output"]
            assert abs(gap - entry["convergence_delta"]) < 1e-5
            assert abs(entry["output"] - np.log(p[1] / p[0])) < 1e-4  # the served network's log-odds
        v2 = {"inputs": [{"name": c, "shape": [1], "datatype": "BYTES" if c == "color" else "FP64", "data": [rows[c].iloc[0]]} for c in rows],
              "parameters": {"method": "integrated_gradients"}}
        assert client.post("/v2/models/net/explain", json=v2).status_code == 200
        for bad, field in (({**body, "params": {"method": "tree"}}, "method"),  # a method this model has not
                           ({**body, "params": {"method": "gradients"}}, "parameters.method"),
                           ({"dataframe_records": [{"x1": 1.0, "x3": 1.0, "color": "red"}], "params": {"method": "integrated_gradients"}}, "x2")):
            resp = client.post("/v2/models/net/explain", json=bad)
            assert resp.status_code == 422 and resp.json()["field"] == field, resp.text


def test_the_page_needs_something_to_show() -> None:
    with pytest.raises(InvalidInput, match="at least one") as err:
        render_neural_html()
    assert err.value.field == "tabular"


@pytest.mark.browser
def test_the_page_renders_offline_in_chromium(tab: TabularNet, text_net: Any, cnn: DigitsCNN, tmp_path: Path) -> None:
    rows = driven_frame(3, seed=7)[COLUMNS]
    texts = keyword_texts(2, seed=8)[0]
    page_html = render_neural_html(tabular=integrated_gradients(tab, rows), tokens=token_attributions(text_net, ["zebra great w1", texts[1]]),
                                   attention=attention_maps(text_net, texts[0]), cams=grad_cam(cnn, shape_images(2, seed=2)[0]), title="Why")
    path = tmp_path / "neural.html"
    path.write_text(page_html, encoding="utf-8")
    seen: dict[str, Any] = {}

    def inspect(page: Any) -> None:
        for key, selector in (("bars", "#integrated-gradients rect.bar"), ("tokens", "#tokens span.token"), ("attention", "#attention svg.attention"),
                              ("cells", "#attention rect.cell"), ("cams", "#gradcam svg.gradcam"), ("heat", "#gradcam rect.heat")):
            seen[key] = page.locator(selector).count()
        seen["first"] = page.locator("#tokens span.token").first.inner_text()
        seen["width"] = page.locator("#gradcam svg.gradcam").first.bounding_box()["width"]

    errors, requests = open_offline(path, inspect)
    assert errors == [] and requests == [path.resolve().as_uri()]
    assert seen["bars"] == 3 * 4 and seen["tokens"] == 3 + 11 and seen["first"] == "<unk>"  # shown as text, not taken for markup
    assert seen["attention"] == 2 * (1 + 4) and seen["cells"] == 2 * 5 * 12 * 12
    assert seen["cams"] == 2 and seen["heat"] == 2 * 64 and seen["width"] == 128
