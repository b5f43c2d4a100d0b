"""A model loaded from verified bytes, with its input schema; the flavour decides how it is deserialised."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from mloop.errors import InvalidInput
from mloop.tracking import SKOPS_TRUSTED_TYPES

if TYPE_CHECKING:  # pandas and NumPy load with the model, not with the registry (listing commands never need them)
    import numpy as np
    import pandas as pd

EXTRAS_DIR = "mloop"  # what mloop adds to a model folder at registration: rebuilt by an importing workspace
TWIN_FILE = f"{EXTRAS_DIR}/model.onnx"  # the ONNX twin
PARITY_FILE = f"{EXTRAS_DIR}/parity_sample.json"  # rows the twin and the native model must agree on


@dataclass(frozen=True)
class ColumnSpec:
    """One input column of a model signature: its name, MLflow type and whether it is required."""

    name: str
    type: str
    required: bool = True


@dataclass
class LoadedModel:
    """A registered version in memory: ``predict`` gives the model's output, ``score`` one number per row."""

    name: str
    version: int
    flavour: str
    model: Any
    inputs: list[ColumnSpec] = field(default_factory=list)
    twin: bytes | None = None
    parity_sample: pd.DataFrame | None = None
    background: pd.DataFrame | None = None  # rows of the training data, for explainers that need a background
    background_labels: np.ndarray | None = None  # their labels, when the run gave them
    explainers: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)  # built on first use, by method

    @property
    def feature_names(self) -> list[str]:
        return [c.name for c in self.inputs]

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """The model's own output, as MLflow's pyfunc gives it (class probabilities for a classifier)."""
        if self.inputs:
            missing = [c for c in self.feature_names if c not in frame.columns]
            if missing:
                raise InvalidInput(f"Input is missing required field(s) {missing} of model {self.name!r}.", field=missing[0])
            frame = frame[self.feature_names]
        if self.flavour in ("sklearn", "pytorch", "onnx") and hasattr(self.model, "predict_proba"):
            import numpy as np

            return np.asarray(self.model.predict_proba(frame))
        import numpy as np

        return np.asarray(self.model.predict(frame))

    @staticmethod
    def scores(output: np.ndarray) -> np.ndarray:
        """One number per row: the positive-class probability of a binary classifier, else the output itself."""
        import numpy as np

        out = np.asarray(output)
        if out.ndim == 2 and out.shape[1] == 2:
            return out[:, 1]
        return out.reshape(len(out), -1)[:, -1]

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        return self.scores(self.predict(frame))


def read_parity_sample(folder: Path) -> pd.DataFrame:
    """The parity sample stored in a model folder (``pandas`` split orientation)."""
    import json

    data = json.loads((folder / PARITY_FILE).read_text())
    import pandas as pd

    return pd.DataFrame(data["data"], columns=data["columns"])


def read_background(folder: Path) -> dict[str, Any]:
    """The training rows kept in a model folder for explainers, and their labels if kept (as LoadedModel fields)."""
    from mloop.tracking import BACKGROUND_FILE, BACKGROUND_LABEL

    file = folder / BACKGROUND_FILE
    if not file.exists():
        return {}
    import pandas as pd

    frame = pd.read_parquet(file)
    labels = frame.pop(BACKGROUND_LABEL).to_numpy() if BACKGROUND_LABEL in frame.columns else None
    return {"background": frame, "background_labels": labels}


def signature_inputs(path: Path) -> list[ColumnSpec]:
    """The named input columns of the MLmodel signature in folder ``path``."""
    return _signature_inputs(yaml.safe_load((path / "MLmodel").read_text()))


def _signature_inputs(mlmodel: dict[str, Any]) -> list[ColumnSpec]:
    import json

    raw = (mlmodel.get("signature") or {}).get("inputs")
    if not raw:
        return []
    return [ColumnSpec(str(c.get("name")), str(c.get("type")), bool(c.get("required", True))) for c in json.loads(raw) if "name" in c]


def load_from_dir(path: Path, *, name: str, version: int) -> LoadedModel:
    """Deserialise the MLflow model in ``path`` (already verified): scikit-learn natively, anything else through pyfunc."""
    mlmodel = yaml.safe_load((path / "MLmodel").read_text())
    flavors = mlmodel.get("flavors", {})
    inputs = _signature_inputs(mlmodel)
    sk = flavors.get("sklearn")
    if sk is not None:
        file = path / sk["pickled_model"]
        if sk.get("serialization_format") == "skops":
            from mloop._lazy import skops_io

            model = skops_io().load(file, trusted=list(SKOPS_TRUSTED_TYPES))
        else:
            import cloudpickle

            with file.open("rb") as fh:
                model = cloudpickle.load(fh)
        twin_file = path / TWIN_FILE
        twin = twin_file.read_bytes() if twin_file.exists() else None
        sample = read_parity_sample(path) if twin is not None and (path / PARITY_FILE).exists() else None
        return LoadedModel(name=name, version=version, flavour="sklearn", model=model, inputs=inputs, twin=twin, parity_sample=sample,
                           **read_background(path))
    torch_conf = flavors.get("pytorch")
    if torch_conf is not None:
        from mloop.tracking import load_torch_model

        twin_file = path / TWIN_FILE
        twin = twin_file.read_bytes() if twin_file.exists() else None
        sample = read_parity_sample(path) if twin is not None and (path / PARITY_FILE).exists() else None
        return LoadedModel(name=name, version=version, flavour="pytorch", model=load_torch_model(path, torch_conf), inputs=inputs, twin=twin,
                           parity_sample=sample, **read_background(path))
    onnx_conf = flavors.get("onnx")
    if onnx_conf is not None:  # the graph is the model: it is its own twin, nothing to check parity against
        from mloop.registry._onnx_model import OnnxClassifier

        graph = (path / onnx_conf["data"]).read_bytes()
        return LoadedModel(name=name, version=version, flavour="onnx", model=OnnxClassifier(graph, inputs), inputs=inputs, twin=graph,
                           **read_background(path))
    lgb_conf = flavors.get("lightgbm")
    if lgb_conf is not None:
        return LoadedModel(name=name, version=version, flavour="lightgbm", model=_load_lightgbm(path, lgb_conf), inputs=inputs,
                           **read_background(path))
    xgb_conf = flavors.get("xgboost")
    if xgb_conf is not None:
        return LoadedModel(name=name, version=version, flavour="xgboost", model=_load_xgboost(path, xgb_conf), inputs=inputs,
                           **read_background(path))
    import mlflow.pyfunc

    return LoadedModel(name=name, version=version, flavour="pyfunc", model=mlflow.pyfunc.load_model(str(path)), inputs=inputs,
                       **read_background(path))


# Types mloop lets skops rebuild for LightGBM's scikit-learn API; decided here, never read from the model file.
LIGHTGBM_TRUSTED_TYPES = ("lightgbm.basic.Booster", "collections.OrderedDict", "lightgbm.sklearn.LGBMClassifier", "lightgbm.sklearn.LGBMRegressor")


def _load_lightgbm(path: Path, conf: dict[str, Any]) -> Any:
    """A LightGBM Booster from its native text file, or a scikit-learn API model from skops (or pickle, verified)."""
    import lightgbm as lgb

    file = path / conf["data"]
    if file.suffix == ".lgb" or conf.get("model_class") == "lightgbm.basic.Booster":
        return lgb.Booster(model_file=str(file))
    if conf.get("serialization_format") == "skops":
        from mloop._lazy import skops_io

        return skops_io().load(file, trusted=list(LIGHTGBM_TRUSTED_TYPES))
    import cloudpickle

    with file.open("rb") as fh:
        return cloudpickle.load(fh)


def _load_xgboost(path: Path, conf: dict[str, Any]) -> Any:
    """An XGBoost model from its native file (ubj/json/xgb): no pickle involved."""
    try:
        import xgboost as xgb
    except ImportError as exc:  # an optional integration
        raise InvalidInput('This model needs XGBoost. Install the extra: pip install "mloop[xgboost]"') from exc
    model_class = conf.get("model_class", "xgboost.core.Booster")
    model: Any
    if model_class == "xgboost.core.Booster":
        model = xgb.Booster()
    elif model_class in ("xgboost.sklearn.XGBClassifier", "xgboost.sklearn.XGBRegressor"):
        model = getattr(xgb, model_class.rsplit(".", 1)[1])()
    else:
        raise InvalidInput(f"Unsupported XGBoost model class {model_class!r}. Valid: Booster, XGBClassifier, XGBRegressor.")
    model.load_model(str(path / conf["data"]))
    return model
