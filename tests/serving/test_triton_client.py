"""A KServe/Triton HTTP client works against `mloop serve`, in JSON and with the binary tensor extension."""

from __future__ import annotations

import numpy as np
import pytest

from mloop.demo._server_process import ServerProcess
from mloop.workspace import Workspace
from tests.conftest import TOY_SPEC, toy_frame

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_infer_and_metadata(deployed: Workspace, binary: bool) -> None:
    tritonclient = pytest.importorskip("tritonclient.http")
    rows = toy_frame(6, seed=2)[list(TOY_SPEC.features)]
    expected = deployed.registry.load("toy", 1).predict(rows)
    with ServerProcess(deployed.root, log_file=deployed.root / "server.log") as server:
        client = tritonclient.InferenceServerClient(url=f"127.0.0.1:{server.port}")
        auth = server.headers  # Triton's client sends headers per call, as KServe deployments behind auth need
        assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("toy", headers=auth)
        assert not client.is_model_ready("toy")  # without a credential: refused
        meta = client.get_model_metadata("toy", headers=auth)
        assert meta["name"] == "toy" and {i["name"] for i in meta["inputs"]} == set(rows.columns)
        inputs = []
        for col in rows.columns:
            if col == "color":
                tensor = tritonclient.InferInput(col, [6, 1], "BYTES")
                tensor.set_data_from_numpy(rows[[col]].to_numpy(dtype=object), binary_data=binary)
            else:
                tensor = tritonclient.InferInput(col, [6, 1], "FP64")
                tensor.set_data_from_numpy(rows[[col]].to_numpy(dtype=np.float64), binary_data=binary)
            inputs.append(tensor)
        result = client.infer("toy", inputs, request_id="triton-1", headers=auth)
        assert result.get_response()["id"] == "triton-1" and result.get_response()["model_version"] == "1"
        np.testing.assert_allclose(result.as_numpy("predict"), expected, atol=1e-9)
