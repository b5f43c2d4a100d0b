"""Edge bundles: a registered model's ONNX twin, a few sample rows and onnxruntime-web (WebAssembly) in one static
folder that scores in a browser with no network beyond the file server that serves it.

onnxruntime-web comes from the npm registry once, pinned by its ``dist.integrity`` (SHA-512) and cached; an
already-downloaded tarball can be passed instead, so an export can run fully offline.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mloop.errors import Conflict, IntegrityError, InvalidInput, Unavailable
from mloop.files import replacing, write_atomic

if TYPE_CHECKING:
    from mloop.registry import LoadedModel, Registry

ORT_WEB_VERSION = "1.30.0"
ORT_WEB_URL = f"https://registry.npmjs.org/onnxruntime-web/-/onnxruntime-web-{ORT_WEB_VERSION}.tgz"
ORT_WEB_INTEGRITY = "sha512-q0y+JrrtukXSzsBWEMccVfqX25LRmosXHF+CaRJmg8pZClzcV7svNc4rKY3jL02Vb7QmRMDs1SigqR4CXAfKYQ=="
ORT_WEB_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.wasm", "ort-wasm-simd-threaded.mjs")  # the wasm-only build and its runtime
TEMPLATES = ("index.html", "app.js")
SAMPLE_ROWS = 5
# The ops mloop's twins use (gradient-boosted trees; PyTorch's export of a TabularNet), each run in Chromium and compared with
# Python's ONNX Runtime by tests/optimize/test_edge.py; a twin using any other op is refused rather than shipped untried.
WEB_OPS = frozenset({("ai.onnx.ml", "LabelEncoder"), ("ai.onnx.ml", "TreeEnsemble"), *(("", op) for op in (
    "Add", "Cast", "Concat", "Constant", "ConstantOfShape", "Div", "Gather", "Gemm", "Identity", "IsNaN", "Mul", "Relu", "Shape",
    "Sigmoid", "Softmax", "Sub", "Where"))})
_WEB_TYPES = {11: "float64", 8: "string"}  # ONNX elem_type → the ort.Tensor type app.js builds (onnx_feed feeds only these)
_NUMBER_TYPES = ("double", "float", "long", "integer")
Progress = Callable[[int, int | None], None]  # (bytes so far, total bytes or None)


@dataclass(frozen=True)
class EdgeBundle:
    """What ``export_edge`` wrote: the folder, the model version in it, its files (relative) and their total size."""

    dest: Path
    name: str
    version: int
    files: tuple[str, ...]
    samples: int
    size: int


def cache_dir() -> Path:
    """Where downloaded assets are kept: ``$XDG_CACHE_HOME/mloop`` (an absolute path only), else ``~/.cache/mloop``."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(base) if os.path.isabs(base) else Path.home() / ".cache") / "mloop"


def cached_tarball() -> Path:
    return cache_dir() / f"onnxruntime-web-{ORT_WEB_VERSION}.tgz"


def _integrity(path: Path) -> str:
    digest = hashlib.sha512()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return "sha512-" + base64.b64encode(digest.digest()).decode()


def check_tarball(path: Path) -> Path:
    """``path`` if it is the pinned onnxruntime-web tarball; ``InvalidInput`` naming it otherwise."""
    if not path.is_file():
        raise InvalidInput(f"--assets {path}: no such file (pass the onnxruntime-web-{ORT_WEB_VERSION}.tgz tarball).", field="assets")
    try:
        found = _integrity(path)
    except OSError as exc:
        raise InvalidInput(f"--assets {path}: cannot read it ({exc.strerror or exc}).", field="assets") from None
    if found != ORT_WEB_INTEGRITY:
        raise InvalidInput(f"--assets {path} is not onnxruntime-web {ORT_WEB_VERSION} from the npm registry: its integrity is {found}, "
                           f"the pinned one {ORT_WEB_INTEGRITY}. Fetch it with `npm pack onnxruntime-web@{ORT_WEB_VERSION}` or from "
                           f"{ORT_WEB_URL}.", field="assets")
    return path


def ensure_assets(*, assets: Path | None = None, progress: Progress | None = None) -> Path:
    """The verified onnxruntime-web tarball: ``assets`` if given (checked, not copied), else the cached one,
    downloaded into the cache first when it is missing or does not match the pinned integrity."""
    if assets is not None:
        return check_tarball(assets)
    target = cached_tarball()
    if target.is_file() and _integrity(target) == ORT_WEB_INTEGRITY:
        return target
    _download(target, progress)
    return target


def seed_cache(assets: Path) -> Path:
    """Copy a verified tarball into the cache, so later exports on this machine need neither network nor ``--assets``."""
    source = check_tarball(assets)
    target = cached_tarball()
    if not (target.is_file() and _integrity(target) == ORT_WEB_INTEGRITY):
        write_atomic(target, source.read_bytes())
    return target


def _download(target: Path, progress: Progress | None) -> None:
    """Fetch the tarball into ``target`` (atomically), checking its integrity before it gets that name."""
    import http.client
    import urllib.error
    import urllib.request

    url = ORT_WEB_URL
    hint = (f"Run `mloop edge assets` where the npm registry is reachable, or fetch {url} (or `npm pack onnxruntime-web@{ORT_WEB_VERSION}`) "
            "and pass the file with --assets PATH.")
    digest = hashlib.sha512()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, replacing(target) as tmp, tmp.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            done = 0
            while chunk := response.read(1 << 16):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
            out.flush()
            found = "sha512-" + base64.b64encode(digest.digest()).decode()
            if found != ORT_WEB_INTEGRITY:
                raise IntegrityError(f"The download from {url} has integrity {found}, not the pinned {ORT_WEB_INTEGRITY}; nothing was kept. {hint}")
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise Unavailable(f"Could not download onnxruntime-web {ORT_WEB_VERSION} from {url}: {reason}. {hint}") from None


def ort_files(tarball: Path) -> dict[str, bytes]:
    """The files of the wasm build the page loads, read from the (verified) tarball without extracting anything else."""
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            for name in ORT_WEB_FILES:
                member = tar.extractfile(f"package/dist/{name}")
                if member is None:
                    raise KeyError(name)
                files[name] = member.read()
    except (tarfile.TarError, KeyError, OSError) as exc:
        raise InvalidInput(f"{tarball}: not a readable onnxruntime-web package ({exc}).", field="assets") from None
    return files


@dataclass(frozen=True)
class WebFeed:
    """How app.js feeds the twin: one float64 matrix ``X``, or one [n, 1] tensor per ONNX input (name → ort type)."""

    matrix: bool
    inputs: dict[str, str]
    output: str
    missing_token: str


def web_feed(twin: bytes, columns: list[Any]) -> WebFeed:
    """Read the twin's graph and say how the browser feeds it; ``InvalidInput`` naming any op, input or category
    onnxruntime-web cannot run exactly as Python's ONNX Runtime does."""
    import onnx

    graph = onnx.load_from_string(twin).graph
    used = {(n.domain if n.domain != "ai.onnx" else "", n.op_type) for n in graph.node}
    unknown = sorted(f"{d}.{o}" if d else o for d, o in used - WEB_OPS)
    if unknown:
        raise InvalidInput(f"The ONNX twin uses op(s) {', '.join(unknown)}, not checked with onnxruntime-web {ORT_WEB_VERSION}; "
                           f"edge bundles support {', '.join(sorted(o for _, o in WEB_OPS))}.", field="model")
    inputs: dict[str, str] = {}
    for value in graph.input:
        elem = value.type.tensor_type.elem_type
        if elem not in _WEB_TYPES:
            raise InvalidInput(f"ONNX input {value.name!r} has element type {onnx.TensorProto.DataType.Name(elem)}; an edge bundle feeds "
                               "double and string inputs only.", field=value.name)
        inputs[value.name] = _WEB_TYPES[elem]
    names = {c.name for c in columns}
    matrix = list(inputs) == ["X"] and "X" not in names
    if not matrix and (extra := sorted(set(inputs) - names)):
        raise InvalidInput(f"ONNX input(s) {extra} are not columns of the model's signature {sorted(names)}.", field=extra[0])
    keys: set[str] = set()
    for node in graph.node:
        for attr in node.attribute if node.op_type == "LabelEncoder" else ():
            if attr.name == "keys_tensor":
                keys.update(v.decode("utf-8", "replace") for v in attr.t.string_data)
            elif attr.name == "keys_strings":
                keys.update(v.decode("utf-8", "replace") for v in attr.strings)
    if nul := sorted(k for k in keys if "\x00" in k):
        raise InvalidInput(f"Category {nul[0]!r} holds a NUL character, which onnxruntime-web cuts strings at; it cannot be matched in a "
                           "browser.", field="model")
    return WebFeed(matrix, inputs, graph.output[0].name, missing_token(keys))


def missing_token(keys: set[str]) -> str:
    """The string app.js sends for a missing category: ``MISSING_TOKEN`` unless the browser would see it as a
    category (onnxruntime-web passes strings as C strings, so the token arrives as ``""``); then one that is not.

    >>> missing_token({"red"}) == "\\x00mloop-missing", missing_token({"", "red"})
    (True, 'mloop-missing')
    """
    from mloop.registry._onnx_model import MISSING_TOKEN

    token, n = MISSING_TOKEN, 0
    while token.split("\x00", 1)[0] in keys:
        n += 1
        token = "mloop-missing" if n == 1 else f"mloop-missing-{n}"
    return token


def bundle_spec(loaded: LoadedModel, feed: WebFeed, rows: int = SAMPLE_ROWS) -> dict[str, Any]:
    """The content of samples.json: the model, its columns (with how the page checks each), the feed and sample rows."""
    columns = [{"name": c.name, "type": c.type, "kind": _kind(c, feed)} for c in loaded.inputs]
    samples: list[dict[str, Any]] = []
    if loaded.parity_sample is not None:
        frame = loaded.parity_sample[[c.name for c in loaded.inputs]].head(rows)
        samples = [{str(k): _json_value(v) for k, v in row.items()} for row in frame.to_dict("records")]
    classes = getattr(loaded.model, "classes_", None)
    return {
        "format": 1,
        "model": {"name": loaded.name, "version": loaded.version},
        "runtime": {"name": "onnxruntime-web", "version": ORT_WEB_VERSION, "backend": "wasm"},
        "columns": columns,
        "feed": {"matrix": feed.matrix, "inputs": [{"name": k, "type": v} for k, v in feed.inputs.items()]},
        "output": {"name": feed.output, "classes": classes.tolist() if classes is not None and feed.output == "probabilities" else None},
        "missing_token": feed.missing_token,
        "rows": samples,
    }


def _json_value(value: Any) -> Any:
    """A cell as JSON takes it, at full precision: NaN and None become null, NumPy scalars plain numbers."""
    value = value.item() if hasattr(value, "item") else value
    return None if value is None or (isinstance(value, float) and value != value) else value


def _kind(column: Any, feed: WebFeed) -> str:
    """What the page accepts in a column: a number or null, a string or null, or anything (a column the twin ignores)."""
    if feed.matrix:
        return "number"
    if column.name in feed.inputs:
        return "string" if feed.inputs[column.name] == "string" else "number"
    return "string" if column.type == "string" else "number" if column.type in _NUMBER_TYPES else "any"


def _check_dest(dest: Path, force: bool) -> None:
    if dest.exists() and not dest.is_dir():
        raise InvalidInput(f"-o {dest} is a file, not a folder.", field="dest")
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise Conflict(f"-o {dest} exists and is not empty; pass --force to write the bundle into it (files of the same name are replaced).")


def export_edge(registry: Registry, name: str, ref: str | int, dest: Path, *, assets: Path | None = None, force: bool = False,
                progress: Progress | None = None) -> EdgeBundle:
    """Write the static browser bundle of ``name``@``ref`` into ``dest``: the verified twin, samples.json, the page and
    onnxruntime-web's wasm files. Everything is checked (model, twin, assets) before the first file is written."""
    from mloop.optimize._twin import verify_twin

    dest = Path(dest)
    _check_dest(dest, force)
    loaded = registry.load(name, ref)
    if loaded.twin is None:
        raise InvalidInput(f"Model {name!r} version {loaded.version} has no ONNX twin, so it cannot run in a browser; a twin is built at "
                           "registration when mloop can convert the model (its model card says why this one has none).", field="model")
    verify_twin(loaded)
    spec = bundle_spec(loaded, web_feed(loaded.twin, loaded.inputs))
    runtime = ort_files(ensure_assets(assets=assets, progress=progress))
    template = resources.files("mloop.optimize") / "edge"
    files: dict[str, bytes] = {t: (template / t).read_bytes() for t in TEMPLATES}
    files["model.onnx"] = loaded.twin
    files["samples.json"] = (json.dumps(spec, indent=1) + "\n").encode()
    files.update({f"ort/{n}": data for n, data in runtime.items()})
    for rel, data in files.items():
        write_atomic(dest / rel, data)
    return EdgeBundle(dest, loaded.name, loaded.version, tuple(files), len(spec["rows"]), sum(len(d) for d in files.values()))
