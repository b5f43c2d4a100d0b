"""Writing a version's card: its first form at registration, its global explanation and evaluation computed by a
worker thread after ``register`` returns (``mloop.explain`` and monitoring's pure statistics, imported lazily: the
card is the registry's, the explaining is the layers above), and its deployments added as they come. Each rewrite
starts from the card's data kept beside it (``v<N>.json``)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mloop.files import write_atomic
from mloop.registry._card import CardData, render_card
from mloop.registry._card_html import render_card_html
from mloop.registry._loaded import LoadedModel

log = logging.getLogger("mloop.registry")
_WORKERS_LOCK = threading.Lock()
_UPDATE_LOCK = threading.Lock()  # read-modify-write of a card's data
_WORKERS: list[threading.Thread] = []  # cards being explained in this process (not daemons: an exit waits for them)


def wait_for_cards(timeout: float | None = None) -> None:
    """Wait until every card being explained in this process is written."""
    with _WORKERS_LOCK:
        workers = list(_WORKERS)
    for worker in workers:
        worker.join(timeout)
    with _WORKERS_LOCK:
        _WORKERS[:] = [w for w in _WORKERS if w.is_alive()]


class CardWriter:
    """The cards of one registry: ``<cards_dir>/<model>/v<N>.{md,html,json}``; ``client`` gives the MLflow client whose
    version descriptions carry the Markdown."""

    def __init__(self, cards_dir: Path, client: Callable[[], Any]) -> None:
        self.cards_dir = cards_dir
        self.client = client

    def first(self, data: CardData, loaded: LoadedModel | Exception) -> bool:
        """Write the card as registration knows it; True when a global explanation is to follow (``explain_later``)."""
        explains = not isinstance(loaded, Exception) and loaded.background is not None and len(loaded.background) > 0
        if not isinstance(loaded, Exception):
            data.flavour, data.estimator = loaded.flavour, _estimator_name(loaded.model)
        data.notes = ["being computed; the card is rewritten with them in a few seconds"] if explains else _explanation(loaded)[1]
        self.write(data)
        return explains

    def explain_later(self, data: CardData, loaded: LoadedModel) -> None:
        worker = threading.Thread(target=self._explain, args=(data, loaded), name=f"mloop-card-{data.name}-v{data.version}")
        with _WORKERS_LOCK:
            _WORKERS.append(worker)
        worker.start()

    def write(self, data: CardData) -> None:
        """The card as Markdown (also the MLflow version's description), as HTML and as its data, each replaced
        atomically."""
        card = render_card(data)
        folder = self.cards_dir / data.name
        write_atomic(folder / f"v{data.version}.json", json.dumps(dataclasses.asdict(data), default=str))
        write_atomic(folder / f"v{data.version}.html", render_card_html(data))
        write_atomic(folder / f"v{data.version}.md", card)
        self.client().update_model_version(data.name, str(data.version), description=card)

    def data(self, name: str, version: int) -> CardData | None:
        path = self.cards_dir / name / f"v{version}.json"
        return CardData(**json.loads(path.read_text())) if path.exists() else None

    def _explain(self, data: CardData, loaded: LoadedModel) -> None:
        explanation, notes = _explanation(loaded)
        evaluation = _evaluation(loaded, data)
        try:
            with _UPDATE_LOCK:  # a deployment may have updated the card meanwhile: start from what is written
                current = self.data(data.name, data.version) or data
                current.explanation, current.notes, current.evaluation = explanation, notes, evaluation
                self.write(current)
        except Exception as exc:  # noqa: BLE001 - the card keeps its first form; the log says why
            log.error("could not rewrite the card of %s v%s: %s", data.name, data.version, exc)

    def deployed(self, name: str, version: int, *, deployment: str, alias: str) -> None:
        """Add (or refresh) a deployment in the version's card."""
        with _UPDATE_LOCK:
            data = self.data(name, version)
            if data is None:  # a card written before cards kept their data: left as it is
                return
            entry = {"name": deployment, "alias": alias, "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                     "endpoint": f"POST /v2/models/{deployment}/infer"}
            data.deployments = [d for d in data.deployments if d.get("name") != deployment] + [entry]
            self.write(data)


def _estimator_name(model: Any) -> str:
    if type(model).__name__ == "Pipeline":
        return f"{type(model.steps[-1][1]).__name__} pipeline"
    return type(model).__name__


def _explanation(loaded: LoadedModel | Exception) -> tuple[dict[str, Any] | None, list[str]]:
    """The model's global explanation for its card, from the training rows kept with it (``mloop.explain``, imported
    here lazily: the card is the registry's, the explaining is the layer above), with why there is none when there
    is none, its flavour and its estimator's class name. A failure leaves the card without explanations, never the
    registration undone."""
    if isinstance(loaded, Exception):
        return None, [f"the model could not be loaded to explain it ({loaded})"]
    if loaded.background is None or not len(loaded.background):
        return None, ["the model kept no training rows (log it with the training frame: run.log_sklearn_model(model, frame[features]))"]
    try:
        from mloop.explain import global_explanation

        result = global_explanation(loaded, loaded.background, labels=loaded.background_labels, repeats=3, sampled_rows=0)
    except Exception as exc:  # noqa: BLE001
        return None, [f"explaining the model failed ({type(exc).__name__}: {exc})"]
    return result.to_dict(), []


def _evaluation(loaded: LoadedModel, data: CardData) -> dict[str, Any] | None:
    """Accuracy with intervals, per slice of the card's groups, and fairness across its sensitive features, on the
    labelled training rows kept with a binary classifier (``monitoring``'s pure statistics, imported lazily); None
    without labels or for other models."""
    labels = loaded.background_labels
    if labels is None or loaded.background is None or len(np.unique(labels)) != 2:
        return None
    try:
        from mloop.monitoring._performance import performance_report

        columns = set(loaded.background.columns)
        sensitive = [c for c in (data.user("sensitive_features") or "").split(",") if c in columns]
        groups = [c for c in (data.user("groups") or "").split(",") if c in columns]
        scores = np.asarray(loaded.score(loaded.background), dtype=np.float64)
        if scores.min() < 0 or scores.max() > 1:
            return None
        return {"rows": len(labels), **performance_report(scores, labels, loaded.background, groups=groups, sensitive=sensitive)}
    except Exception as exc:  # noqa: BLE001 - the card says so
        log.warning("no evaluation for the card of %s v%s: %s", data.name, data.version, exc)
        return None
