"""The status routes: health probes (the only public routes), server and model metadata, per-version
statistics and the Prometheus series."""

from __future__ import annotations

import threading

from mloop import __version__
from mloop.serving._hub import ModelHub
from mloop.serving._metrics import ServingMetrics
from mloop.serving._replies import Reply, error_reply, json_reply
from mloop.serving._routes import Call, Route

DRAINING = threading.Event()  # set by the server on SIGTERM: readiness answers 503 from then on


def _datatype(column_type: str) -> str:
    return "BYTES" if column_type == "string" else ("BOOL" if column_type == "boolean" else "FP64")


class Status:
    """Answers from what a server holds in memory; ``stopping`` is set when its lifespan ends."""

    def __init__(self, hub: ModelHub, metrics: ServingMetrics) -> None:
        self.hub = hub
        self.metrics = metrics
        self.stopping = threading.Event()

    def routes(self) -> list[Route]:
        probes = [
            Route("GET", path, None, handler, summary=summary)
            for path, handler, summary in (
                ("/health/live", self.live, "Liveness: the process answers."),
                ("/v2/health/live", self.live, "Liveness (Open Inference Protocol)."),
                ("/health/ready", self.ready, "Readiness: models loaded and not shutting down."),
                ("/v2/health/ready", self.ready, "Readiness (Open Inference Protocol)."),
            )
        ]
        return [
            *probes,
            Route("GET", "/v2", "viewer", self.server_metadata, summary="Server name, version and extensions."),
            Route("GET", "/metrics", "viewer", self.prometheus, text=True, summary="Prometheus series of this server."),
            Route("GET", "/v2/models/{name}", "viewer", self.model_metadata, summary="A deployment's versions, inputs and outputs."),
            Route("GET", "/v2/models/{name}/ready", "viewer", self.model_ready, summary="Whether a deployment is loaded."),
            Route("GET", "/v2/models/{name}/stats", "viewer", self.model_stats,
                  summary="Latency percentiles, queue vs compute, batch sizes and throughput per version."),
        ]

    async def live(self, call: Call) -> Reply:
        return json_reply({"live": True})

    async def ready(self, call: Call) -> Reply:
        if self.stopping.is_set() or DRAINING.is_set():
            return error_reply(503, "The server is shutting down.")
        if not self.hub.ready:
            return error_reply(503, "Models are still loading.")
        return json_reply({"ready": True})

    async def server_metadata(self, call: Call) -> Reply:
        return json_reply({"name": "mloop", "version": __version__, "extensions": ["mlflow_scoring", "feedback", "stats"]})

    async def prometheus(self, call: Call) -> Reply:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Reply(200, generate_latest(self.metrics.registry), {"content-type": CONTENT_TYPE_LATEST})

    async def model_metadata(self, call: Call) -> Reply:
        name = call.params["name"]
        served = self.hub.get(name)
        runtime = served.baseline.runtime
        return json_reply(
            {
                "name": name,
                "versions": [str(sv.version) for sv in served.versions()],
                "platform": f"mloop-{runtime.kind}",
                "inputs": [{"name": c.name, "datatype": _datatype(c.type), "shape": [-1]} for c in runtime.inputs],
                "outputs": [{"name": "predict", "datatype": "FP64", "shape": [-1, -1]}],
            }
        )

    async def model_ready(self, call: Call) -> Reply:
        name = call.params["name"]
        self.hub.get(name)
        return json_reply({"name": name, "ready": True})

    async def model_stats(self, call: Call) -> Reply:
        name = call.params["name"]
        served = self.hub.get(name)
        return json_reply(
            {
                "name": name,
                "revision": served.revision,
                "rollout": {
                    "baseline_version": served.baseline.version,
                    "candidate_version": served.candidate.version if served.candidate else None,
                    "candidate_percent": served.candidate_percent,
                    "policy": served.policy,
                    "arms": [{"arm": r.label, "version": r.version.version, "weight": r.weight} for r in served.routes],
                    "shadow": served.shadow.book.snapshot() if served.shadow is not None else None,
                },
                "serving": served.config.to_dict(),
                "queue_depth": {str(sv.version): sv.batcher.pending for sv in served.versions()},
                "versions": self.hub.stats.deployment(name),
            }
        )
