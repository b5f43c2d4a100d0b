from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.browser import open_offline
from tests.conftest import run_cli


@pytest.fixture
def tables(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    n = 3000
    ref = pd.DataFrame({"x": rng.normal(size=n), "y": rng.exponential(size=n), "c": rng.choice(["a", "b", "c"], n)})
    cur = pd.DataFrame({"x": rng.normal(0.4, size=n), "y": rng.exponential(size=n), "c": rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1])})
    ref.loc[::50, "y"] = np.nan
    ref.to_parquet(tmp_path / "ref.parquet")
    cur.to_csv(tmp_path / "cur.csv", index=False)
    return tmp_path / "ref.parquet", tmp_path / "cur.csv"


def test_json_is_one_object_with_every_feature(tables: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["drift", "report", "-r", str(tables[0]), "-c", str(tables[1]), "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["drift"] is True
    assert {f["name"]: f["drift"] for f in data["features"]} == {"x": True, "y": False, "c": True}
    for f in data["features"]:
        assert set(f) == {"name", "test", "statistic", "p_value", "p_value_adjusted", "effect_size", "measure", "floor", "drift"}
    assert [(f["measure"], f["floor"]) for f in data["features"]] == [("wasserstein_sd", 0.1), ("wasserstein_sd", 0.1), ("total_variation", 0.075)]
    assert data["floors"]["wasserstein_sd"] == 0.1


def test_the_command_reads_with_arrow_what_the_python_api_reads_with_pandas(tables: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """The command builds columns from Arrow (no pandas); every statistic equals the DataFrame path's."""
    from mloop.monitoring import compare_tables, drift_summary

    code, out, _ = run_cli(["drift", "report", "-r", str(tables[0]), "-c", str(tables[1]), "--json"], capsys)
    expected = drift_summary(compare_tables(pd.read_parquet(tables[0]), pd.read_csv(tables[1])))
    assert code == 0 and json.loads(out) == json.loads(json.dumps(expected))


def test_prediction_column_and_test_overrides(tables: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    args = ["drift", "report", "-r", str(tables[0]), "-c", str(tables[1]), "--json", "--prediction", "y", "--test", "x=wasserstein"]
    code, out, _ = run_cli(args, capsys)
    data = json.loads(out)
    assert code == 0 and [f["name"] for f in data["features"]] == ["x", "c"]
    assert data["features"][0]["test"] == "wasserstein" and data["prediction"]["name"] == "y"
    code, _, err = run_cli([*args[:-1], "x"], capsys)
    assert code == 2 and "--test takes FEATURE=TEST, got 'x'" in err
    code, _, err = run_cli([*args[:-1], "c=ks"], capsys)
    assert code == 2 and "needs a numeric feature" in err


def test_bonferroni_and_high_floors_change_the_verdict(tables: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    args = ["drift", "report", "-r", str(tables[0]), "-c", str(tables[1]), "--json", "--correction", "bonferroni",
            "--floor", "wasserstein_sd=0.5", "--floor", "total_variation=0.5"]
    code, out, _ = run_cli(args, capsys)
    assert code == 0 and json.loads(out)["drift"] is False and json.loads(out)["correction"] == "bonferroni"
    assert json.loads(out)["floors"] == {"wasserstein_sd": 0.5, "total_variation": 0.5, "psi": 0.1, "jensen_shannon": 0.1}


@pytest.mark.parametrize(
    ("floor", "message"),
    [
        ("ks_d=0.1", "Unknown effect measure 'ks_d'. Valid: wasserstein_sd, total_variation, psi, jensen_shannon"),
        ("wasserstein_sd=big", "--floor wasserstein_sd= takes a number, got 'big'"),
        ("wasserstein_sd=-1", "The floor for wasserstein_sd must be a finite number ≥ 0, got -1.0"),
        ("0.1", "--floor takes MEASURE=VALUE, got '0.1'"),
    ],
)
def test_bad_floors_are_named(tables: tuple[Path, Path], floor: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["drift", "report", "-r", str(tables[0]), "-c", str(tables[1]), "--json", "--floor", floor], capsys)
    assert code == 2 and message in err and err.count("\n") == 1


@pytest.mark.browser
def test_html_report_renders_offline(tables: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report" / "drift.html"
    code, stdout, _ = run_cli(["drift", "report", "-r", str(tables[0]), "-c", str(tables[1]), "-o", str(out)], capsys)
    assert code == 0 and "2 of 3 features drifted" in stdout and out.exists()

    def inspect(page) -> None:  # type: ignore[no-untyped-def]
        assert page.locator("#features tr").count() == 4
        assert page.locator("figure svg").count() == 3
        assert "Drift" in page.locator("#verdict").inner_text()

    errors, requests = open_offline(out, inspect)
    assert errors == [] and all(u.startswith("file://") for u in requests)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: (d / "missing.csv", d / "cur.csv"), "does not exist"),
        (lambda d: (d / "ref.txt", d / "cur.csv"), "unknown extension '.txt'"),
        (lambda d: (d / "ref.parquet", d / "narrow.csv"), "lacks column(s) ['y', 'c']"),
    ],
)
def test_bad_inputs_exit_2_with_one_line(tables: tuple[Path, Path], make, message: str, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    folder = tables[0].parent
    (folder / "ref.txt").write_text("x\n1\n")
    pd.DataFrame({"x": [1.0, 2.0]}).to_csv(folder / "narrow.csv", index=False)
    ref, cur = make(folder)
    code, _, err = run_cli(["drift", "report", "-r", str(ref), "-c", str(cur), "--json"], capsys)
    assert code == 2 and message in err and err.count("\n") == 1


def test_bad_option_values_are_named(tables: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["drift", "report", "-r", str(tables[0]), "-c", str(tables[1]), "--json", "--correction", "holm"], capsys)
    assert code == 2 and "Unknown correction 'holm'. Valid: bh, bonferroni, none" in err


def test_cli_in_a_real_process(tables: tuple[Path, Path]) -> None:
    done = subprocess.run([sys.executable, "-m", "mloop", "drift", "report", "-r", str(tables[0]), "-c", str(tables[1]), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and json.loads(done.stdout)["features"][0]["name"] == "x"


def test_a_table_without_rows_or_with_unreadable_columns_is_named(tables: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    folder = tables[0].parent
    (folder / "header.csv").write_text("x,y,c\n")
    code, _, err = run_cli(["drift", "report", "-r", str(folder / "header.csv"), "-c", str(tables[1]), "--json"], capsys)
    assert code == 2 and "The reference table has no rows" in err and err.count("\n") == 1
    (folder / "twice.csv").write_text("x,x\n1,2\n")
    code, _, err = run_cli(["drift", "report", "-r", str(folder / "twice.csv"), "-c", str(tables[1]), "--json"], capsys)
    assert code == 2 and "has column 'x' more than once" in err
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": pa.array([[1, 2], [3]])}), folder / "nested.parquet")
    code, _, err = run_cli(["drift", "report", "-r", str(folder / "nested.parquet"), "-c", str(tables[1]), "--json"], capsys)
    assert code == 2 and "Column 'x' of" in err and "drift compares numbers and categories" in err
