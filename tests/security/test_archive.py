"""Archives from elsewhere: every escaping or oversized variant is refused before a byte is written."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from mloop.errors import InvalidInput
from mloop.security import safe_extract


def _tar(path: Path, build: Callable[[tarfile.TarFile], None], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tar:
        build(tar)
    return path


def _file(tar: tarfile.TarFile, name: str, data: bytes = b"x") -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _link(kind: bytes, name: str, target: str) -> Callable[[tarfile.TarFile], None]:
    def build(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = target
        tar.addfile(info)
    return build


VARIANTS: dict[str, Callable[[tarfile.TarFile], None]] = {
    "dot-dot": lambda t: _file(t, "../escape.txt"),
    "deep dot-dot": lambda t: _file(t, "model/../../escape.txt"),
    "absolute": lambda t: _file(t, "/tmp/mloop-escape.txt"),
    "symlink out": _link(tarfile.SYMTYPE, "model/link", "/etc/passwd"),
    "symlink relative": _link(tarfile.SYMTYPE, "model/link", "../../etc/passwd"),
    "hardlink": _link(tarfile.LNKTYPE, "model/hard", "/etc/passwd"),
    "device": _link(tarfile.CHRTYPE, "model/dev", ""),
    "fifo": _link(tarfile.FIFOTYPE, "model/fifo", ""),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_escaping_entries_are_refused(tmp_path: Path, variant: str) -> None:
    archive = _tar(tmp_path / "bad.tar.gz", lambda t: (_file(t, "model/ok.txt"), VARIANTS[variant](t)))
    dest = tmp_path / "out"
    with pytest.raises(InvalidInput, match="refused"):
        safe_extract(archive, dest)
    assert not (tmp_path / "escape.txt").exists() and not Path("/tmp/mloop-escape.txt").exists()
    assert not dest.exists() or not any(dest.rglob("*"))


def test_caps_on_entries_and_bytes(tmp_path: Path) -> None:
    many = _tar(tmp_path / "many.tar", lambda t: [_file(t, f"f{i}") for i in range(50)], mode="w")
    with pytest.raises(InvalidInput, match="more than 20 entries"):
        safe_extract(many, tmp_path / "a", max_members=20)
    big = _tar(tmp_path / "big.tar.gz", lambda t: _file(t, "zeros", b"\0" * 2_000_000))  # compresses to a few KiB
    with pytest.raises(InvalidInput, match="unpacks to more than 1000000 bytes"):
        safe_extract(big, tmp_path / "b", max_bytes=1_000_000)
    with pytest.raises(InvalidInput, match="not a readable tar archive"):
        (tmp_path / "junk.tar").write_bytes(b"not a tar")
        safe_extract(tmp_path / "junk.tar", tmp_path / "c")


def test_a_good_archive_extracts(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "ok.tar.gz", lambda t: (_file(t, "model/MLmodel", b"flavors: {}"), _file(t, "manifest.json", b"{}")))
    assert safe_extract(archive, tmp_path / "out") == ["manifest.json", "model/MLmodel"]
    assert (tmp_path / "out" / "model" / "MLmodel").read_bytes() == b"flavors: {}"


@pytest.mark.slow
def test_a_model_travels_between_workspaces_as_a_bundle(deployed: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[name-defined]  # noqa: F821
    import numpy as np

    from mloop.workspace import Workspace
    from tests.conftest import TOY_SPEC, run_cli, toy_frame

    bundle = tmp_path / "toy.tar.gz"
    code, out, _ = run_cli(["--workspace", str(deployed.root), "models", "export", "toy", "--version", "1", "-o", str(bundle)], capsys)
    assert code == 0 and bundle.is_file()
    other = Workspace.init(tmp_path / "other")
    code, out, err = run_cli(["--workspace", str(other.root), "models", "import", str(bundle), "--name", "imported", "--alias", "champion"], capsys)
    assert code == 0, err
    assert "registered imported v1 as champion" in out
    rows = toy_frame(20, seed=9)[list(TOY_SPEC.features)]
    np.testing.assert_allclose(other.registry.load("imported", "champion").predict(rows), deployed.registry.load("toy", 1).predict(rows))
    assert other.store.manifests.get_signed("imported", 1).key_id == "k1"  # signed with the importer's own key
    # a bundle whose file changed after export is refused
    tampered = tmp_path / "tampered.tar.gz"
    with tarfile.open(bundle) as src, tarfile.open(tampered, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            if member.name.endswith("MLmodel") and data is not None:
                data += b"\n# changed\n"
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    code, _, err = run_cli(["--workspace", str(other.root), "models", "import", str(tampered)], capsys)
    assert code == 1 and "does not match its registered SHA-256" in err
    # a bundle.json with a key mloop does not know is refused, naming it
    extra = tmp_path / "extra.tar.gz"
    with tarfile.open(bundle) as src, tarfile.open(extra, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            if member.name == "bundle.json" and data is not None:
                data = json.dumps({**json.loads(data), "signature": "trust me"}).encode()
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    code, _, err = run_cli(["--workspace", str(other.root), "models", "import", str(extra)], capsys)
    assert code == 2 and "bundle.json: unknown key 'signature'" in err
    escaping = _tar(tmp_path / "escape.tar.gz", lambda t: (_file(t, "bundle.json", b"{}"), _file(t, "../../x", b"x")))
    code, _, err = run_cli(["--workspace", str(other.root), "models", "import", str(escaping)], capsys)
    assert code == 2 and "refused" in err
