"""Runs on MLflow with lineage: every run records its data fingerprints, code version, environment and seeds.

Everything lands in the MLflow store, so stock MLflow (``mlflow.search_runs``, ``mlflow ui``) sees it. Every
call goes through an ``MlflowClient`` bound to this workspace's store: nothing here reads or sets MLflow's
process-wide state (the fluent API's tracking URI and active run), so two workspaces open in one process log
to their own stores.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mloop.data import Fingerprint, fingerprint
from mloop.errors import InvalidInput, NotFound
from mloop.names import check_name
from mloop.tracking._catalog import CatalogUnavailable, MlflowCatalog, RunSummary
from mloop.tracking._lineage import code_version, environment
from mloop.tracking._torch_model import is_torch_module, log_torch_model

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

T = TypeVar("T")
log = logging.getLogger("mloop.tracking")

# The scikit-learn types that mloop itself allows skops to rebuild; decided here, never read from a model file.
SKOPS_TRUSTED_TYPES: tuple[str, ...] = (
    "functools.partial",
    "numpy.dtype",  # the column types a ColumnTransformer with pandas output keeps
    "sklearn.feature_selection._mutual_info.mutual_info_classif",
    "sklearn.feature_selection._mutual_info.mutual_info_regression",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
    "mloop.training._online.OnlineClassifier",
)

# What a scikit-learn model logged by mloop needs to load. Declared, so that MLflow does not infer it by
# importing the model in a subprocess (several seconds per model).
_SKLEARN_REQUIREMENTS = ("scikit-learn", "skops", "numpy", "scipy", "pandas")

# Feature lineage on a run: a tag per feature view (its versions, comma-separated: searchable) and the full record.
FEATURE_VIEW_TAG = "mloop.feature_view."
FEATURES_ARTIFACT = "lineage/features.json"
CARD_TAG = "mloop.card."
CARD_FIELDS = ("intended_use", "out_of_scope", "limitations", "ethical_considerations", "license", "sensitive_features", "groups")
BACKGROUND_FILE = "background.parquet"  # rows of the training data in a model folder: the explainers' background
BACKGROUND_ROWS = 500
BACKGROUND_LABEL = "__mloop_label__"  # the label column beside the background's features, when the run gave labels


def background_rows(frame: pd.DataFrame, labels: Any) -> pd.DataFrame | None:
    """Up to 500 seeded rows of the training features (with their labels when given): the explainers' background."""
    if len(frame) <= 5:
        return None
    import numpy as np

    rows = np.sort(np.random.default_rng(0).choice(len(frame), min(BACKGROUND_ROWS, len(frame)), replace=False))
    background = frame.iloc[rows]
    if labels is not None:
        values = np.asarray(labels)
        if len(values) != len(frame):
            raise InvalidInput(f"labels has {len(values)} values for {len(frame)} rows.", field="labels")
        background = background.assign(**{BACKGROUND_LABEL: values[rows]})
    return background


def _skops_can(model: Any) -> bool:
    """Whether skops can store ``model`` with only the types mloop trusts: scikit-learn's own and mloop's. Anything
    else (a River model inside :class:`mloop.training.RiverClassifier`) is pickled; a registered version is verified
    against its signed manifest before it is unpickled, so only bytes this workspace signed are ever loaded."""
    from mloop._lazy import skops_io

    try:
        return not set(skops_io().get_untrusted_types(data=skops_io().dumps(model))) - set(SKOPS_TRUSTED_TYPES)
    except Exception:  # a type skops cannot take apart at all
        return False


@contextmanager
def _quiet_downloads() -> Iterator[None]:
    """No MLflow progress bar while a few small JSON files download (it would draw over a command's own output)."""
    import os

    before = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
        else:
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = before


def _pinned(packages: tuple[str, ...]) -> list[str]:
    out = []
    for name in packages:
        try:
            out.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(name)
    return out


class TrackedRun:
    """An active MLflow run of one workspace; what it logs is visible to stock MLflow."""

    def __init__(self, client: MlflowClient, run_id: str, experiment_id: str, seed: int | None) -> None:
        self.client = client
        self.run_id = run_id
        self.experiment_id = experiment_id
        self.seed = seed
        self.datasets: dict[str, Fingerprint] = {}
        self.feature_views: dict[tuple[str, int], list[str]] = {}  # (view, version) → the features used
        self.feature_services: set[tuple[str, int]] = set()

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        self.client.log_batch(self.run_id, params=[Param(str(k), str(v)) for k, v in params.items()])

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step or 0) for k, v in metrics.items()])

    def log_metric_steps(self, points: list[tuple[str, float, int]]) -> None:
        """Log many ``(key, value, step)`` points in as few calls as MLflow allows (1,000 a batch): a training curve."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        for i in range(0, len(points), 1000):
            self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, int(s)) for k, v, s in points[i : i + 1000]])

    def describe(self, **fields: str | list[str]) -> None:
        """What the model card says that only a person can: ``intended_use``, ``out_of_scope``, ``limitations``,
        ``ethical_considerations``, ``license``, ``sensitive_features`` (input columns; fairness is measured on them)
        and ``groups`` (input columns the card's accuracy is sliced by). Kept as run tags ``mloop.card.<field>``; the
        card fills in what it measures beside them."""
        tags = {}
        for key, value in fields.items():
            if key not in CARD_FIELDS:
                raise InvalidInput(f"Unknown model card field {key!r}. Valid: {', '.join(CARD_FIELDS)}.", field=key)
            text = ",".join(value) if isinstance(value, list) else value
            if not isinstance(text, str) or len(text) > 5000:
                raise InvalidInput(f"Card field {key!r} must be text of at most 5,000 characters (a list for sensitive_features and groups).",
                                   field=key)
            tags[f"{CARD_TAG}{key}"] = text
        self.set_tags(tags)

    def set_tags(self, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_dict(self, data: dict[str, Any], artifact_file: str) -> None:
        self.client.log_dict(self.run_id, data, artifact_file)

    def log_dataset(self, frame: pd.DataFrame, *, context: str, name: str, targets: str | None = None) -> Fingerprint:
        """Record ``frame`` as an input of this run: MLflow's dataset entry plus mloop's fingerprint."""
        import mlflow.data
        from mlflow.entities import Dataset as DatasetEntity
        from mlflow.entities import DatasetInput, InputTag
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        check_name(context, "dataset context")
        fp = fingerprint(frame)
        with warnings.catch_warnings():
            # MLflow hints that integer columns cannot hold missing values: true, and irrelevant to a record of data.
            warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
            from_pandas = mlflow.data.from_pandas  # type: ignore[attr-defined]
            # MLflow infers the schema by looking at every value (seconds for 100k rows of strings): the column
            # types are the frame's, so a sample gives the same schema; the profile counts the whole frame.
            sample = from_pandas(frame.head(1000), name=name, targets=targets, digest=fp.sha256[:32])._to_mlflow_entity()
        entity = DatasetEntity(
            name=sample.name, digest=sample.digest, source_type=sample.source_type, source=sample.source, schema=sample.schema,
            profile=json.dumps({"num_rows": len(frame), "num_elements": int(frame.size)}),
        )
        self.client.log_inputs(self.run_id, datasets=[DatasetInput(entity, tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)])])
        self.set_tags(
            {
                f"mloop.dataset.{context}.name": name,
                f"mloop.dataset.{context}.sha256": fp.sha256,
                f"mloop.dataset.{context}.rows": str(fp.rows),
            }
        )
        self.datasets[context] = fp
        self.log_dict({"name": name, "targets": targets, **fp.to_dict()}, f"lineage/datasets/{context}.json")
        return fp

    def log_feature_views(self, views: list[dict[str, Any]], *, service: dict[str, Any] | None = None) -> None:
        """Record the feature views this run's data came from (each ``{"name", "version", "features"}``) and the
        feature service, if one named them: a tag ``mloop.feature_view.<view>`` = its versions (what
        ``mloop features lineage`` searches) and ``lineage/features.json``. Calls add up (a run may join twice)."""
        for view in views:
            used = self.feature_views.setdefault((str(view["name"]), int(view["version"])), [])
            used.extend(str(f) for f in view.get("features", []) if str(f) not in used)
        if service is not None:
            self.feature_services.add((str(service["name"]), int(service["version"])))
        versions: dict[str, list[int]] = {}
        for name, version in sorted(self.feature_views):
            versions.setdefault(name, []).append(version)
        self.set_tags({f"{FEATURE_VIEW_TAG}{name}": ",".join(map(str, v)) for name, v in versions.items()})
        self.log_dict({"views": [{"name": n, "version": v, "features": f} for (n, v), f in sorted(self.feature_views.items())],
                       "services": [{"name": n, "version": v} for n, v in sorted(self.feature_services)]}, FEATURES_ARTIFACT)

    def log_sklearn_model(self, model: Any, input_example: pd.DataFrame, *, labels: Any = None) -> str:
        """Log a fitted scikit-learn estimator with its signature and input example (skops format, the types skops
        may rebuild fixed by mloop); returns its URI (``models:/<model id>``). Given more rows than an example needs
        (the training features), up to 500 of them are kept as the model's explanation background, with their
        ``labels`` when given (one per row of ``input_example``: the card's permutation importance uses them). A PyTorch
        module that scores frames (``predict_proba``, as mloop's networks do) is logged by :func:`log_torch_model`."""
        if is_torch_module(model):
            return log_torch_model(self, model, input_example, labels=labels)
        import mlflow.sklearn
        from mlflow.models import infer_signature

        example = input_example.head(5)
        proba = hasattr(model, "predict_proba")
        output = model.predict_proba(example) if proba else model.predict(example)
        with warnings.catch_warnings():  # MLflow's hint about integer columns, on every model with a count among its inputs
            warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
            signature = infer_signature(example, output)
        packages = _SKLEARN_REQUIREMENTS + tuple(p for p in ("river",) if type(getattr(model, "model", None)).__module__.startswith(p))
        skops = _skops_can(model)
        options = {"serialization_format": "skops", "skops_trusted_types": list(SKOPS_TRUSTED_TYPES)} if skops else \
            {"serialization_format": "cloudpickle"}
        return self.log_model(
            mlflow.sklearn, model, input_example=example, signature=signature, background=background_rows(input_example, labels),
            pip_requirements=_pinned(packages), pyfunc_predict_fn="predict_proba" if proba else "predict", **options,
        )

    def log_model(
        self, flavor: Any, model: Any, *, input_example: Any = None, signature: Any = None, pip_requirements: list[str] | None = None,
        background: pd.DataFrame | None = None, files: dict[str, bytes] | None = None, **options: Any,
    ) -> str:
        """Log ``model`` with any MLflow flavour module (``mlflow.lightgbm``, ``mlflow.xgboost``, …) as a logged
        model of this run and return its URI (``models:/<model id>``). ``options`` go to the flavour's
        ``save_model``. Requirements default to the flavour's own pinned list, so MLflow does not infer them by
        importing the model in a subprocess. ``background`` (rows of the training data) is kept in the model folder
        as ``background.parquet``, for explainers that need one; ``files`` (relative path → bytes) are written beside."""
        from mlflow.entities import LoggedModelOutput
        from mlflow.models import Model

        requirements = pip_requirements if pip_requirements is not None else list(flavor.get_default_pip_requirements())
        logged = self.client.create_logged_model(self.experiment_id, name="model", source_run_id=self.run_id)
        try:
            self.client.log_outputs(self.run_id, [LoggedModelOutput(logged.model_id, step=0)])
            with tempfile.TemporaryDirectory(prefix="mloop-model-") as tmp, warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
                local = Path(tmp) / "model"
                flavor.save_model(
                    model, str(local),
                    mlflow_model=Model(artifact_path=logged.artifact_location, model_uuid=logged.model_id, run_id=self.run_id, model_id=logged.model_id),
                    input_example=input_example, signature=signature, pip_requirements=requirements, **options,
                )
                if background is not None and len(background):
                    background.reset_index(drop=True).to_parquet(local / BACKGROUND_FILE, index=False)
                for relative, data in (files or {}).items():  # mloop's own files beside the flavour's (a network's weights)
                    (local / relative).parent.mkdir(parents=True, exist_ok=True)
                    (local / relative).write_bytes(data)
                self.client.log_model_artifacts(logged.model_id, str(local))
        except BaseException:
            self.client.finalize_logged_model(logged.model_id, "FAILED")
            raise
        self.client.finalize_logged_model(logged.model_id, "READY")
        return f"models:/{logged.model_id}"


class Tracker:
    """Experiments and runs in the workspace's MLflow store, with artifacts under ``artifact_root``."""

    def __init__(self, tracking_uri: str, artifact_root: Path, docs_dir: Path | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root
        self.docs_dir = docs_dir  # a finished top-level run's experiment document goes here
        self._client: MlflowClient | None = None
        self._catalog: MlflowCatalog | None | bool = False  # False: not tried yet; None: unavailable

    @property
    def catalog(self) -> MlflowCatalog | None:
        """Direct reads of MLflow's SQL store (see :class:`MlflowCatalog`), or None when only the client can read it."""
        if self._catalog is False:
            try:
                self._catalog = MlflowCatalog(self.tracking_uri)
            except CatalogUnavailable:
                self._catalog = None
        return self._catalog  # type: ignore[return-value]

    def read(self, direct: Callable[[MlflowCatalog], T], through_client: Callable[[], T]) -> T:
        """``direct(catalog)`` when the store can be read directly, else (or if its schema is not the expected one)
        ``through_client()``: the same answer either way, the first much sooner."""
        catalog = self.catalog
        if catalog is not None:
            try:
                return direct(catalog)
            except CatalogUnavailable as exc:
                if exc.lasting:  # another schema: stop trying; a lock or a restart: try again next time
                    self._catalog = None
        return through_client()

    @property
    def client(self) -> MlflowClient:
        """A client bound to this workspace's tracking store and registry (never MLflow's global URI)."""
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        return self._client

    def experiment_id(self, name: str, *, create: bool = True) -> str:
        check_name(name, "experiment name")
        client = self.client
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return str(experiment.experiment_id)
        if not create:
            raise NotFound(f"Experiment {name!r} does not exist. List them with `mloop runs list`.")
        location = (self.artifact_root / name).resolve()
        location.mkdir(parents=True, exist_ok=True)
        try:
            return str(client.create_experiment(name, artifact_location=location.as_uri()))
        except Exception:  # another process created it meanwhile
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return str(experiment.experiment_id)

    @contextmanager
    def start_run(
        self,
        experiment: str,
        *,
        run_name: str | None = None,
        seed: int | None = None,
        tags: dict[str, str] | None = None,
        code_dir: Path | None = None,
        parent: TrackedRun | None = None,
    ) -> Iterator[TrackedRun]:
        """Start a run that records code version, environment and seed before the caller's code runs; it ends
        FINISHED, or FAILED if the block raises. ``parent`` makes it a nested run (MLflow's parent tag)."""
        from mlflow.tracking.context.registry import resolve_tags

        experiment_id = self.experiment_id(experiment)
        code = code_version(code_dir)
        env = environment()
        lineage_tags = {
            "mloop.code.commit": code.commit or "",
            "mloop.code.dirty_sha256": code.dirty_sha256 or "",
            "mloop.env.python": env["python"],
            **{f"mloop.env.{k}": v for k, v in env["packages"].items()},
        }
        if code.commit:
            lineage_tags["mlflow.source.git.commit"] = code.commit
        if seed is not None:
            lineage_tags["mloop.seed"] = str(seed)
        if parent is not None:
            lineage_tags["mlflow.parentRunId"] = parent.run_id
        client = self.client
        run = client.create_run(experiment_id, tags=resolve_tags({**lineage_tags, **(tags or {})}), run_name=run_name)
        tracked = TrackedRun(client, run.info.run_id, experiment_id, seed)
        try:
            tracked.log_dict({"code": code.to_dict(), "environment": env, "seed": seed}, "lineage/lineage.json")
            if seed is not None:
                tracked.log_params({"seed": seed})
            yield tracked
        except BaseException:
            client.set_terminated(tracked.run_id, "FAILED")
            raise
        client.set_terminated(tracked.run_id, "FINISHED")
        if parent is None and self.docs_dir is not None and "mlflow.parentRunId" not in (tags or {}):
            self._document(tracked.run_id, experiment)

    def _document(self, run_id: str, experiment: str) -> None:
        """The experiment document of a finished run (a failure to write it is logged, never the run's)."""
        try:
            from mloop.documents import DocumentStore, experiment_document

            run = self.client.get_run(run_id)
            assert self.docs_dir is not None
            DocumentStore(self.docs_dir).write(experiment_document({
                "run_id": run_id, "experiment": experiment, "run_name": run.info.run_name, "status": run.info.status,
                "params": dict(run.data.params), "metrics": dict(run.data.metrics), "tags": dict(run.data.tags),
                "started": (run.info.start_time or 0) / 1000, "ended": (run.info.end_time or 0) / 1000,
            }))
        except Exception as exc:  # noqa: BLE001 - documentation never fails the run it documents
            log.warning("no experiment document for run %s: %s", run_id, exc)

    def list_runs(self, experiment: str | None = None, max_results: int = 100) -> list[RunSummary]:
        """Runs, newest first, with their experiment's name."""
        check = check_name(experiment, "experiment name") if experiment is not None else None

        def direct(catalog: MlflowCatalog) -> list[RunSummary]:
            names = catalog.experiments()
            ids = [i for i, n in names.items() if check is None or n == check]
            if check is not None and not ids:
                raise NotFound(f"Experiment {check!r} does not exist. List them with `mloop runs list`.")
            return catalog.runs(ids, max_results)

        return self.read(direct, lambda: self._list_runs(experiment, max_results))

    def runs_page(self, experiment: str | None = None, *, offset: int = 0, limit: int = 50) -> tuple[list[RunSummary], int]:
        """One page of runs, newest first, and how many there are in all (one indexed query each on the SQL store)."""
        check = check_name(experiment, "experiment name") if experiment is not None else None

        def direct(catalog: MlflowCatalog) -> tuple[list[RunSummary], int]:
            names = catalog.experiments()
            ids = [i for i, n in names.items() if check is None or n == check]
            if check is not None and not ids:
                raise NotFound(f"Experiment {check!r} does not exist. List them with `mloop runs list`.")
            return catalog.runs(ids, limit, offset), catalog.count_runs(ids)

        def through_client() -> tuple[list[RunSummary], int]:  # MLflow's API pages by token: read up to the page's end
            if offset + limit > 50_000:
                raise InvalidInput(f"offset: at most {50_000 - limit} on a tracking server read through MLflow's API (it pages by token).",
                                   field="offset")
            runs = self._list_runs(experiment, offset + limit)
            total = len(runs) if len(runs) < offset + limit else len(self._list_runs(experiment, 50_000))
            return runs[offset:], total

        return self.read(direct, through_client)

    def _list_runs(self, experiment: str | None, max_results: int) -> list[RunSummary]:
        client = self.client
        experiments = {e.experiment_id: e.name for e in client.search_experiments()}
        ids = list(experiments) if experiment is None else [self.experiment_id(experiment, create=False)]
        if not ids:
            return []
        runs = client.search_runs(ids, max_results=max_results, order_by=["attributes.start_time DESC"])
        return [
            RunSummary(
                run_id=r.info.run_id,
                name=r.info.run_name or "",
                experiment=experiments.get(r.info.experiment_id, r.info.experiment_id),
                status=r.info.status,
                start_time=(r.info.start_time or 0) / 1000,
                metrics=dict(r.data.metrics),
            )
            for r in runs
        ]

    def read_dict(self, run_id: str, artifact_file: str) -> dict[str, Any]:
        """A JSON artifact of ``run_id`` that :meth:`TrackedRun.log_dict` wrote; :class:`NotFound` when it has none."""
        with tempfile.TemporaryDirectory(prefix="mloop-artifact-") as tmp, _quiet_downloads():
            try:
                local = Path(self.client.download_artifacts(run_id, artifact_file, tmp))
            except Exception:
                raise NotFound(f"Run {run_id} has no artifact {artifact_file}.") from None
            data: dict[str, Any] = json.loads(local.read_text())
        return data

    def lineage(self, run_id: str) -> dict[str, Any]:
        """The lineage recorded for ``run_id``: code, environment, seed, datasets, and the feature views and services
        its data came from (empty lists when none)."""
        with tempfile.TemporaryDirectory(prefix="mloop-lineage-") as tmp, _quiet_downloads():
            local = Path(self.client.download_artifacts(run_id, "lineage", tmp))
            lineage: dict[str, Any] = json.loads((local / "lineage.json").read_text())
            datasets_dir = local / "datasets"
            lineage["datasets"] = {p.stem: json.loads(p.read_text()) for p in sorted(datasets_dir.glob("*.json"))} if datasets_dir.exists() else {}
            features = local / Path(FEATURES_ARTIFACT).name
            recorded = json.loads(features.read_text()) if features.exists() else {}
            lineage["feature_views"] = recorded.get("views", [])
            lineage["feature_services"] = recorded.get("services", [])
        return lineage

    def runs_tagged(self, key: str) -> list[tuple[RunSummary, str]]:
        """Every active run that carries the tag ``key``, newest first, with its value (metrics left empty)."""
        return self.read(lambda catalog: catalog.runs_tagged(key), lambda: self._runs_tagged(key))

    def _runs_tagged(self, key: str) -> list[tuple[RunSummary, str]]:
        client = self.client
        experiments = {e.experiment_id: e.name for e in client.search_experiments()}
        found: list[tuple[RunSummary, str]] = []
        token = None
        while experiments:
            page = client.search_runs(list(experiments), filter_string=f"tags.`{key}` LIKE '%'", max_results=1000,
                                      order_by=["attributes.start_time DESC", "attributes.run_id ASC"], page_token=token)
            found += [(RunSummary(r.info.run_id, r.info.run_name or "", experiments.get(r.info.experiment_id, r.info.experiment_id),
                                  r.info.status, (r.info.start_time or 0) / 1000, {}), r.data.tags[key]) for r in page]
            token = page.token
            if not token:
                break
        return found
