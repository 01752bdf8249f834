"""Runs KServe's own REST client (``kserve.InferenceRESTClient``, protocol v2) against a server, in the
``.venv-kserve`` interpreter, and prints what it got as one JSON document. Not a test module: the test
(tests/serve/test_v2_kserve.py) runs it in a subprocess, because kserve's pins do not fit tidal's venv.

Usage: python client.py BASE_URL MODEL ROWS_JSON — ROWS_JSON a list of {column: number} rows.
"""

from __future__ import annotations

import asyncio
import json
import sys

import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig


def request(model: str, rows: list[dict[str, float]], *, binary: bool) -> InferRequest:
    inputs = []
    for column in rows[0]:
        values = np.array([row[column] for row in rows], dtype=np.float64)
        tensor = InferInput(column, list(values.shape), "FP64")
        tensor.set_data_from_numpy(values, binary_data=binary)
        inputs.append(tensor)
    return InferRequest(model_name=model, infer_inputs=inputs, request_id=f"kserve-{binary}")


async def main(url: str, model: str, rows: list[dict[str, float]]) -> dict[str, object]:
    out: dict[str, object] = {}
    async with InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=30)) as client:
        out["live"] = await client.is_server_live(url)
        out["ready"] = await client.is_server_ready(url)
        out["model_ready"] = await client.is_model_ready(url, model)
        for binary in (False, True):
            response = await client.infer(url, request(model, rows, binary=binary), model_name=model)
            out[f"binary={binary}"] = {
                "id": response.id, "model_name": response.model_name, "model_version": response.model_version,
                "outputs": {o.name: {"datatype": o.datatype, "shape": list(o.shape),
                                     "data": [v.decode() if isinstance(v, bytes) else v
                                              for v in o.as_numpy().reshape(-1).tolist()]}
                            for o in response.outputs}}
        try:
            await client.infer(url, request("no-such-model", rows, binary=False), model_name="no-such-model")
            out["unknown_model"] = "answered"
        except Exception as exc:  # kserve raises httpx.HTTPStatusError for a non-2xx answer
            out["unknown_model"] = f"{type(exc).__name__}: {exc}"
    return out


if __name__ == "__main__":
    base, name, rows_json = sys.argv[1:4]
    print(json.dumps(asyncio.run(main(base, name, json.loads(rows_json)))))
