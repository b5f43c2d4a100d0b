"""An ingest step that reads from the feature store: the entity rows file joined, point in time, with a service's (or
the named) features, through one snapshot of the definitions taken when the step's cache key is made — so the key,
the join and the views and versions recorded on the runs are the same definitions."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import TYPE_CHECKING

from mloop.errors import InvalidInput, NotFound
from mloop.pipelines._spec import Ingest

if TYPE_CHECKING:
    from mloop.features._lineage import FeatureSnapshot
    from mloop.pipelines._cache import FileFingerprints
    from mloop.pipelines._steps import Done


def data_hash(section: Ingest, root: Path, pinned: FeatureSnapshot, files: FileFingerprints) -> str:
    """SHA-256 of what the step reads besides its section: the entity rows file, and per view joined its version, its
    entities' versions and each of its source files' content (a file rewritten under the same definitions reruns the
    step). A query source counts by its text (part of the view's version), not by the data it reads."""
    from mloop.pipelines._cache import digest_of

    used = pinned.used(section.features, section.service)
    views = pinned.views()
    sources = {}
    for name in (v["name"] for v in used["views"]):
        view = views[name]
        pattern = view.source.path
        paths = [] if pattern is None else sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        sources[name] = {"version": pinned.versions[("view", name)], "entities": {e: pinned.versions[("entity", e)] for e in view.entities},
                         "files": {p: files.sha256(Path(p)) for p in paths if Path(p).is_file()}}
    return digest_of({"entities": files.sha256(root / str(section.entities)), "views": sources, "service": used["service"]})


def ingest(section: Ingest, root: Path, pinned: FeatureSnapshot | None, where: str) -> Done:
    """The entity rows with their features as of each row's time; what the join used goes with the step's outputs."""
    from mloop.data import read_table
    from mloop.features._lineage import training_data
    from mloop.pipelines._steps import Done

    if pinned is None:
        raise InvalidInput(f"{where}: a feature-store ingest reads the workspace's feature definitions; run the pipeline with "
                           "`mloop run` (a retraining recipe starts after it: name a table downstream as the recipe's input).", field=where)
    rows = read_table(root / str(section.entities))
    try:
        frame, used = training_data(pinned, rows, features=section.features, service=section.service, timestamp=section.timestamp,
                                    as_of=section.as_of, full_names=section.full_names)
    except (InvalidInput, NotFound) as exc:
        raise InvalidInput(f"{where}: {exc.message}", field=f"{where}.{'service' if section.service else 'features'}") from None
    joined = ", ".join(f"{v['name']} v{v['version']}" for v in used["views"])
    return Done({"table": frame}, params={"entities": str(root / str(section.entities)), "rows": len(frame), "columns": len(frame.columns),
                                          "feature_views": joined, "as_of": section.as_of,
                                          **({"service": section.service} if section.service else {"features": ",".join(section.features or [])})},
                feature_lineage=used)


def check(section: Ingest, pinned: FeatureSnapshot) -> str | None:
    """Why the step's service or features resolve to nothing in ``pinned`` (None when they resolve)."""
    try:
        pinned.used(section.features, section.service)
    except (InvalidInput, NotFound) as exc:
        return exc.message
    return None
