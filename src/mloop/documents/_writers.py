"""The documents the seed names, each built from plain data by the event that triggers it: a finished run (the
experiment document), a deployment (its guide), a monitor's alarm (the drift analysis), a pipeline run (the pipeline
document) and the installation itself (``mloop docs infra``). Pure: callers gather the data, the store writes."""

from __future__ import annotations

import json
from typing import Any

from mloop.documents._model import Bullets, Code, Document, Para, Table
from mloop.documents._store import slug


def experiment_document(run: dict[str, Any]) -> Document:
    """``run``: run_id, experiment, run_name, status, params, metrics, tags, started, ended (seconds)."""
    tags = run.get("tags", {})
    doc = Document("experiment", f"Experiment {run['experiment']}: run {run.get('run_name') or run['run_id'][:8]}", run["run_id"],
                   slug(run["experiment"], run.get("run_name") or "", run["run_id"][:8]), meta={"run_id": run["run_id"], "status": run["status"]})
    objective = tags.get("mloop.card.intended_use") or tags.get("mlflow.note.content")
    doc.add("Objective", Para(objective or f"A run of experiment `{run['experiment']}`; no objective was written "
                                         "(`run.describe(intended_use=...)` or an MLflow note)."),
            Para(f"Status {run['status']}, {max(0.0, run.get('ended', 0) - run.get('started', 0)):.1f} s."))
    contexts = sorted({k.split(".")[2] for k in tags if k.startswith("mloop.dataset.")})
    doc.add("Data", Table(("context", "dataset", "rows", "sha256"), [
        (c, tags.get(f"mloop.dataset.{c}.name"), tags.get(f"mloop.dataset.{c}.rows"), (tags.get(f"mloop.dataset.{c}.sha256") or "")[:16])
        for c in contexts]))
    views = sorted(k.removeprefix("mloop.feature_view.") + " v" + v for k, v in tags.items() if k.startswith("mloop.feature_view."))
    if views:
        doc.sections[-1].blocks.append(Para("Feature views: " + ", ".join(f"`{v}`" for v in views) + "."))
    doc.add("Configuration", Table(("parameter", "value"), sorted(run.get("params", {}).items())))
    doc.add("Results", Table(("metric", "value"), [(k, float(v)) for k, v in sorted(run.get("metrics", {}).items())]))
    doc.add("How to reproduce",
            Para("Check out the commit, restore the recorded environment and re-run; mloop compares the result with this run:"),
            Code(f"git checkout {tags.get('mloop.code.commit') or '<not in a git repository>'}\nmloop reproduce {run['run_id']}", "bash"),
            Table(("what", "value"), [("seed", tags.get("mloop.seed", "not set")), ("python", tags.get("mloop.env.python", "?")),
                                      ("uncommitted changes", tags.get("mloop.code.dirty_sha256") or "none")]))
    return doc


def _example_value(kind: str, value: Any) -> Any:
    if value is not None and not (isinstance(value, float) and value != value):
        return value
    return "text" if kind == "string" else 0.0


def deployment_guide(dep: dict[str, Any]) -> Document:
    """``dep``: name, model, version, alias, columns [(name, type)], example {column: value}, monitors [config],
    serving {...}, feature_service, created."""
    name = dep["name"]
    doc = Document("deployment", f"Deployment guide: {name}", name, slug(name, f"v{dep['version']}"),
                   meta={"model": dep["model"], "version": dep["version"], "alias": dep["alias"]})
    doc.add("What is served", Para(f"`{name}` serves `{dep['model']}` version {dep['version']} (alias `{dep['alias']}`); a server picks "
                                   "up a change of alias or deployment within a second, without a restart."),
            Table(("input column", "type"), [(c, t) for c, t in dep["columns"]]))
    if dep.get("feature_service"):
        doc.sections[-1].blocks.append(Para(f"Requests carry the join keys only: the server fills in feature service "
                                            f"`{dep['feature_service']}` from the online store."))
    row = {c: _example_value(t, dep.get("example", {}).get(c)) for c, t in dep["columns"]}
    body = json.dumps({"dataframe_records": [row]}, default=str)
    v2 = json.dumps({"inputs": [{"name": c, "shape": [1], "datatype": "BYTES" if t == "string" else "FP64", "data": [row[c]]}
                                for c, t in dep["columns"]]}, default=str)
    doc.add("Endpoints", Bullets([
        f"`POST /models/{name}/invocations`: MLflow's scoring formats", f"`POST /v2/models/{name}/infer`: the Open Inference Protocol",
        f"`POST /v2/models/{name}/explain`: per-row attributions that add up to the output",
        f"`POST /v2/models/{name}/feedback`: labels for answered requests (`request_id` from the `X-Request-Id` header)",
        f"`GET /v2/models/{name}/ready`, `GET /metrics`"]),
        Para("Every route needs `Authorization: Bearer <API key or JWT>` with role `predictor` (a key: `mloop auth create-key NAME "
             "--role predictor`)."))
    doc.add("Request and response, with curl",
            Code(f"curl -s localhost:8080/models/{name}/invocations -H \"Authorization: Bearer $KEY\" \\\n"
                 f"  -H 'content-type: application/json' -d '{body}'\n"
                 "# → {\"predictions\": [...]} with headers X-Model-Version and X-Request-Id\n"
                 f"curl -s localhost:8080/v2/models/{name}/infer -H \"Authorization: Bearer $KEY\" -d '{v2}'", "bash"))
    doc.add("The same from Python",
            Code("import httpx\n\n"
                 f"client = httpx.Client(base_url=\"http://localhost:8080\", headers={{\"Authorization\": f\"Bearer {{KEY}}\"}})\n"
                 f"answer = client.post(\"/models/{name}/invocations\", json={{\"dataframe_records\": [{json.dumps(row, default=str)}]}})\n"
                 "print(answer.json()[\"predictions\"], answer.headers[\"x-request-id\"])\n"
                 f"why = client.post(\"/v2/models/{name}/explain\", json={{\"dataframe_records\": [{json.dumps(row, default=str)}]}})\n"
                 "print(why.json()[\"explanations\"][0][\"attributions\"])", "python"))
    monitors = dep.get("monitors", [])
    doc.add("Monitors", Table(("monitor", "kind", "window", "alarms"), [
        (m["name"], "freshness" if m.get("freshness") else "performance" if m.get("performance") else
         "concept drift" if m.get("concept") else "data drift", json.dumps(m.get("window")) if m.get("window") else "—",
         "webhooks: " + ", ".join(m.get("webhooks", [])) if m.get("webhooks") else "dashboard and Prometheus") for m in monitors])
        if monitors else Para(f"No monitors yet: `mloop monitors apply monitors.yaml` (see docs/drift.md), "
                              f"or `PUT /api/monitors` with `deployment: {name}`."))
    serving = dep.get("serving", {})
    if serving:
        doc.add("Serving settings", Table(("setting", "value"), sorted((k, json.dumps(v) if isinstance(v, dict | list) else v)
                                                                      for k, v in serving.items())))
    doc.add("Rollback", Bullets([
        f"`mloop rollout rollback {name}`: back to the version served before the last switch or promotion",
        f"`mloop deploy {name} --model {dep['model']} --version <N>`: serve a named version",
        "every change is audited and reaches each server through the event bus; nothing restarts"]))
    return doc


def drift_analysis(alarm: dict[str, Any]) -> Document:
    """``alarm``: deployment, monitor, kind (data_drift, concept_drift), window {start, end, rows}, config, summary,
    report, policies [{"deployment", "triggers"}]."""
    dep, mon, summary, config = alarm["deployment"], alarm["monitor"], alarm["summary"], alarm.get("config", {})
    doc = Document("drift", f"Drift analysis: {dep} / {mon}", f"{dep}/{mon}", slug(dep, mon, str(int(alarm["window"]["end"]))),
                   meta={"deployment": dep, "monitor": mon, "alarm": alarm["kind"]})
    if alarm["kind"] == "concept_drift":
        doc.add("Method", Para(f"A streaming {summary.get('detector')} detector over the {summary.get('loss')} loss of labelled "
                               f"predictions alarmed after {summary.get('values_since_last')} labels; the recent mean loss is "
                               f"{summary.get('recent_mean_loss', float('nan')):.4f}."))
    else:
        floors = summary.get("floors") or {}
        doc.add("Method and thresholds", Bullets([
            f"per-column tests, p-values adjusted by {summary.get('correction', 'bh')} at alpha {summary.get('alpha')}",
            "a column drifts when its adjusted p-value is below alpha and its effect reaches its floor"
            + (f" ({', '.join(f'{k} {v}' for k, v in floors.items())})" if floors else ""),
            f"the window drifts when at least {config.get('drift_share', 0.3):.0%} of the columns drift (or the predictions do)",
            f"the monitor alarms when {config.get('persistence', {}).get('k', 1)} of the last {config.get('persistence', {}).get('n', 1)} windows drifted"]))
        doc.add("Statistics", Para(f"{summary.get('share_drifted', 0):.0%} of the columns drifted in the window of "
                                   f"{alarm['window']['rows']:,} predictions."),
                Table(("column", "test", "statistic", "adjusted p", "effect", "drift"), [
                    (f["name"], f["test"], f["statistic"], f.get("p_value_adjusted"), f.get("effect_size"), "yes" if f["drift"] else "no")
                    for f in sorted(summary.get("features", []), key=lambda f: (not f["drift"], f.get("p_value_adjusted") or 1))]))
    attribution = summary.get("attribution")
    if attribution:
        doc.add("What moved the predictions",
                Para(f"By exact {attribution['method']} attributions of {attribution['model']} v{attribution['version']}, the mean "
                     f"output ({attribution['output']}) moved by {attribution['output_shift']:+.4f}; the shifts below add up to it."),
                Table(("column", "shift", "share"), [(c["name"], c["shift"], f"{c['share']:.0%}") for c in attribution["columns"][:8]]))
        doc.add("Estimated impact", Para(
            f"The predictions moved by {attribution['output_shift']:+.4f} on the {attribution['output']} scale, mostly through "
            + ", ".join(f"`{c['name']}`" for c in attribution["columns"][:3]) + ". Labels, when they arrive, tell whether accuracy "
            "moved with them (a performance monitor, or the loop's performance trigger, judges that)."))
    listening = [p for p in alarm.get("policies", []) if mon in (p.get("triggers", {}).get("monitors") or [])]
    doc.add("What happens next", Para(
        f"Retraining policy of `{dep}` listens to this monitor: the loop controller opens an attempt (retrain, gate, canary) "
        "unless a guard holds it back; `mloop loop history " + dep + "` shows what it decided." if listening else
        f"No retraining policy listens to monitor `{mon}`: the alarm goes to the dashboard, Prometheus "
        "(`mloop_monitor_alarm`) and the monitor's webhooks. A person decides, or a policy's `triggers.monitors` can name it."))
    if alarm.get("report"):
        doc.add("Report", Para(f"The window's full report, with the distributions: `{alarm['report']}`."))
    return doc


def pipeline_document(run: dict[str, Any]) -> Document:
    """``run``: name, file, run_id, steps [{name, kind, inputs, outputs, cached, seconds}], schedule."""
    doc = Document("pipeline", f"Pipeline {run['name']}", run["name"], slug(run["name"]), meta={"run_id": run.get("run_id", "")})
    doc.add("What it is", Para(f"Declared in `{run['file']}`; its last run `{run.get('run_id', '')}` ran "
                               f"{sum(1 for s in run['steps'] if not s['cached'])} step(s) and reused {sum(1 for s in run['steps'] if s['cached'])}."))
    doc.add("Steps", Table(("step", "kind", "inputs", "made", "last run"), [
        (s["name"], s["kind"], ", ".join(s.get("inputs", [])) or "—", ", ".join(s.get("outputs", [])) or "—",
         "reused from the cache" if s["cached"] else f"ran in {s.get('seconds', 0):.1f} s") for s in run["steps"]]))
    doc.add("Run it", Code(f"mloop run {run['file']}            # reuses every step whose inputs and code did not change\n"
                           f"mloop reproduce {run.get('run_id', '<run id>')}   # re-runs it and compares", "bash"))
    if run.get("schedule"):
        doc.add("Schedule", Para(f"Runs on `{run['schedule']}` (UTC) in the server's leased loop."))
    return doc


def infra_document(info: dict[str, Any]) -> Document:
    """``info``: workspace, version, stores {name: url}, transports, security {...}, files [(path, what)], postgres (bool)."""
    doc = Document("infra", "Installation", info["workspace"], "installation", meta={"mloop": info["version"]})
    doc.add("Stores", Table(("what", "where"), sorted(info["stores"].items())))
    doc.add("Transports", Table(("what", "how"), sorted(info["transports"].items())))
    doc.add("Security", Table(("setting", "value"), sorted(info["security"].items())),
            Para("Keys live in `keys/` (0700; files 0600): the signing keys that sign every model manifest, the JWT secret and "
                 "the workspace's admin credential. Rotate the signing key with `mloop keys rotate`; create scoped API keys with "
                 "`mloop auth create-key NAME --role viewer|predictor|operator|admin`."))
    doc.add("Backup", Bullets([f"`{path}`: {what}" for path, what in info["files"]]),
            Para("Stop writers or take the copy from a quiet moment: SQLite in WAL mode is copied consistently with its "
                 "`.backup` command, not `cp`."),
            Code("\n".join(info["backup"]), "bash"))
    doc.add("Restore", Code("\n".join(info["restore"]), "bash"),
            Para("A restored workspace verifies every model's files against its signed manifest when it loads them: a "
                 "damaged copy is refused, never served."))
    return doc
