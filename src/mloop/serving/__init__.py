"""Serving: the HTTP app (MLflow scoring, Open Inference Protocol v2) over one route table, the model hub, the
server runner, deploying (``Deployments``) and setting traffic policies (``Rollouts``). Names load lazily:
``Deployments`` and ``Rollouts`` do not import the web stack."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mloop.serving._app import create_app
    from mloop.serving._attribution import ModelAttribution, monitor_runner
    from mloop.serving._deployments import Deployments
    from mloop.serving._features import OnlineFeatures, online_features
    from mloop.serving._hub import ModelHub, Served
    from mloop.serving._rollouts import Rollouts
    from mloop.serving._server import serve

__all__ = ["Deployments", "ModelAttribution", "ModelHub", "OnlineFeatures", "Rollouts", "Served", "create_app", "monitor_runner", "online_features",
           "serve"]

_WHERE = {
    "create_app": "mloop.serving._app",
    "Deployments": "mloop.serving._deployments",
    "ModelAttribution": "mloop.serving._attribution",
    "monitor_runner": "mloop.serving._attribution",
    "ModelHub": "mloop.serving._hub",
    "OnlineFeatures": "mloop.serving._features",
    "online_features": "mloop.serving._features",
    "Rollouts": "mloop.serving._rollouts",
    "Served": "mloop.serving._hub",
    "serve": "mloop.serving._server",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'mloop.serving' has no attribute {name!r}")
