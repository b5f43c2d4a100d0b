"""Runs on MLflow with lineage: every run records its data fingerprints, code version, environment and seeds.

Everything lands in the MLflow store, so stock MLflow (``mlflow.search_runs``, ``mlflow ui``) sees it.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mloop.data import Fingerprint, fingerprint
from mloop.errors import NotFound
from mloop.names import check_name
from mloop.tracking._lineage import code_version, environment

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

# The scikit-learn types that mloop itself allows skops to rebuild; decided here, never read from a model file.
SKOPS_TRUSTED_TYPES: tuple[str, ...] = (
    "functools.partial",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
)


class TrackedRun:
    """An active MLflow run; what it logs is visible to stock MLflow."""

    def __init__(self, run_id: str, experiment_id: str, seed: int | None) -> None:
        self.run_id = run_id
        self.experiment_id = experiment_id
        self.seed = seed
        self.datasets: dict[str, Fingerprint] = {}

    def log_params(self, params: dict[str, Any]) -> None:
        import mlflow

        mlflow.log_params({k: v for k, v in params.items()})

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        import mlflow

        mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)

    def set_tags(self, tags: dict[str, Any]) -> None:
        import mlflow

        mlflow.set_tags({k: str(v) for k, v in tags.items()})

    def log_dataset(self, frame: pd.DataFrame, *, context: str, name: str, targets: str | None = None) -> Fingerprint:
        """Record ``frame`` as an input of this run: MLflow's dataset entry plus mloop's fingerprint."""
        import mlflow

        check_name(context, "dataset context")
        fp = fingerprint(frame)
        with warnings.catch_warnings():
            # MLflow hints that integer columns cannot hold missing values: true, and irrelevant to a record of data.
            warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
            from_pandas = mlflow.data.from_pandas  # type: ignore[attr-defined]
            dataset = from_pandas(frame, name=name, targets=targets, digest=fp.sha256[:32])
            mlflow.log_input(dataset, context=context)
        mlflow.set_tags(
            {
                f"mloop.dataset.{context}.name": name,
                f"mloop.dataset.{context}.sha256": fp.sha256,
                f"mloop.dataset.{context}.rows": str(fp.rows),
            }
        )
        self.datasets[context] = fp
        mlflow.log_dict({"name": name, "targets": targets, **fp.to_dict()}, f"lineage/datasets/{context}.json")
        return fp

    def log_sklearn_model(self, model: Any, input_example: pd.DataFrame) -> str:
        """Log a fitted scikit-learn estimator with its signature and input example (skops format); returns its URI."""
        import mlflow
        from mlflow.models import infer_signature

        example = input_example.head(5)
        output = model.predict_proba(example) if hasattr(model, "predict_proba") else model.predict(example)
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(example, output),
            input_example=example,
            serialization_format="skops",
            skops_trusted_types=list(SKOPS_TRUSTED_TYPES),
            pyfunc_predict_fn="predict_proba" if hasattr(model, "predict_proba") else "predict",
        )
        return str(info.model_uri)


class Tracker:
    """Experiments and runs in the workspace's MLflow store, with artifacts under ``artifact_root``."""

    def __init__(self, tracking_uri: str, artifact_root: Path) -> None:
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root

    @property
    def client(self) -> MlflowClient:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def activate(self) -> None:
        """Point MLflow's fluent API at this workspace (used by ``log_model`` and friends)."""
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)

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
        nested: bool = False,
    ) -> Iterator[TrackedRun]:
        """Start a run that records code version, environment and seed before the caller's code runs."""
        import mlflow

        self.activate()
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
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags={**lineage_tags, **(tags or {})}, nested=nested) as run:
            tracked = TrackedRun(run.info.run_id, experiment_id, seed)
            mlflow.log_dict({"code": code.to_dict(), "environment": env, "seed": seed}, "lineage/lineage.json")
            if seed is not None:
                mlflow.log_param("seed", seed)
            yield tracked

    def list_runs(self, experiment: str | None = None, max_results: int = 100) -> pd.DataFrame:
        """Runs, newest first, as ``mlflow.search_runs`` returns them."""
        import mlflow

        self.activate()
        if experiment is None:
            ids = [e.experiment_id for e in self.client.search_experiments()]
        else:
            ids = [self.experiment_id(experiment, create=False)]
        return mlflow.search_runs(experiment_ids=ids, max_results=max_results, order_by=["attributes.start_time DESC"])

    def lineage(self, run_id: str) -> dict[str, Any]:
        """The lineage recorded for ``run_id``: code, environment, seed and datasets."""
        from mlflow.artifacts import download_artifacts

        self.activate()
        local = Path(download_artifacts(run_id=run_id, artifact_path="lineage", tracking_uri=self.tracking_uri))
        lineage: dict[str, Any] = json.loads((local / "lineage.json").read_text())
        datasets_dir = local / "datasets"
        lineage["datasets"] = {
            p.stem: json.loads(p.read_text()) for p in sorted(datasets_dir.glob("*.json"))
        } if datasets_dir.exists() else {}
        return lineage
