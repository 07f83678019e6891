"""Python baseline for `make bench`'s serving figures: a SageMaker-style Flask + PyTorch
inference server (GET /ping, POST /invocations with the same JSON as `airlock serve`),
the "bring your own container" pattern (gunicorn + Flask), serving the same bundle.

Run by benches/publish.rs as:
  gunicorn --chdir benches -k gthread -w WORKERS --threads 16 -b 127.0.0.1:PORT \
      'torch_serve:create_app("BUNDLE_DIR")'
"""

import json
import os

import torch
from flask import Flask, Response, request
from safetensors.torch import load_file


def create_app(bundle: str) -> Flask:
    torch.set_num_threads(1)  # one per gunicorn worker: workers cover the cores
    with open(os.path.join(bundle, "model-card.json")) as f:
        card = json.load(f)
    features = [i["name"] for i in card["inputs"]]
    classes = card["output"]["classes"]
    tensors = load_file(os.path.join(bundle, "model.safetensors"))
    widths = card["architecture"]["layer_widths"]
    layers = []
    for i in range(len(widths) - 1):
        lin = torch.nn.Linear(widths[i], widths[i + 1])
        lin.weight.data = tensors[f"layers.{i}.weight"]
        lin.bias.data = tensors[f"layers.{i}.bias"]
        layers.append(lin)
        if i < len(widths) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).eval()
    app = Flask(__name__)

    @app.get("/ping")
    def ping():
        return Response('{"status":"ok"}', mimetype="application/json")

    @app.post("/invocations")
    def invocations():
        try:
            instances = request.get_json(force=True)["instances"]
            x = torch.tensor([[float(r[f]) for f in features] for r in instances])
        except Exception as e:  # noqa: BLE001
            return Response(json.dumps({"error": str(e)}), status=400, mimetype="application/json")
        with torch.inference_mode():
            p = torch.sigmoid(model(x)).squeeze(1).tolist()
        preds = [{"probability": v, "class": classes[int(v >= 0.5)]} for v in p]
        return Response(json.dumps({"predictions": preds}), mimetype="application/json")

    return app
