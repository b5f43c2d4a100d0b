"""Registered models: the list with aliases, and one model's versions, card and lineage."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from mloop.names import NAME_PATTERN
from mloop.operations._core import Context, Http, Input, ModelName, Operation, Output, operation, version_ref
from mloop.operations.keys import Nothing


class ModelRow(Output):
    name: str
    versions: int
    latest_version: int | None
    aliases: dict[str, int]


class Models(Output):
    models: list[ModelRow]


def _list(ctx: Context, _: Nothing) -> Models:
    return Models(models=[ModelRow(**m) for m in ctx.workspace.registry.list_models()])


LIST = operation(Operation(
    "models.list", "Registered models: how many versions, the newest, and where each alias points.", "viewer", Nothing, Models, _list,
    http=Http("GET", "/api/models"), tags=("models",),
))


class ModelRef(Input):
    name: ModelName = Field(description="The registered model.")
    version: str = Field(default="latest", min_length=1, max_length=64, json_schema_extra={"pattern": NAME_PATTERN},
                         description="A version number or an alias (champion, latest…).")
    card: bool = Field(default=True, description="Include the model card (Markdown).")
    lineage: bool = Field(default=True, description="Include the training run's lineage (code, seed, datasets, feature views).")


class VersionRow(Output):
    version: int
    aliases: list[str]
    run_id: str | None
    created_at: float
    manifest_sha256: str | None


class ModelDetail(Output):
    name: str
    version: int
    versions: list[VersionRow]
    card: str | None = None
    lineage: dict[str, Any] | None = None


def _lineage(ctx: Context, run_id: str | None) -> dict[str, Any] | None:
    """The training run's lineage, summarised: datasets keep their fingerprint and shape, not their column lists."""
    if run_id is None:
        return None
    try:
        full = ctx.workspace.tracker.lineage(run_id)
    except Exception:  # noqa: BLE001 - a version registered from outside a tracked run has no lineage
        return None
    datasets = {name: {k: d.get(k) for k in ("digest", "rows", "columns", "context", "source") if k in d and not isinstance(d.get(k), list)}
                for name, d in full.get("datasets", {}).items()}
    return {**{k: v for k, v in full.items() if k not in ("datasets", "environment")}, "run_id": run_id, "datasets": datasets}


def _show(ctx: Context, ref: ModelRef) -> ModelDetail:
    registry = ctx.workspace.registry
    info = registry.resolve(ref.name, version_ref(ref.version))
    versions = [VersionRow(version=v.version, aliases=list(v.aliases), run_id=v.run_id, created_at=v.created_at, manifest_sha256=v.manifest_sha256)
                for v in registry.versions(ref.name)]
    card = None
    if ref.card:
        try:
            card = registry.card(ref.name, info.version)
        except Exception:  # noqa: BLE001 - versions registered before cards existed have none
            card = None
    return ModelDetail(name=ref.name, version=info.version, versions=versions, card=card,
                       lineage=_lineage(ctx, info.run_id) if ref.lineage else None)


SHOW = operation(Operation(
    "models.show", "One model: its versions with aliases and runs, and one version's card and lineage.", "viewer", ModelRef, ModelDetail, _show,
    http=Http("GET", "/api/models/{name}"), tags=("models",),
))
