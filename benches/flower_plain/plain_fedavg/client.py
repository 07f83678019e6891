"""Plain FedAvg's ClientApp: train locally from the weights received, return them."""

import json
import subprocess
import tempfile
from pathlib import Path

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    node = context.node_config
    record = msg.content["plain"]
    work = Path(str(node["work"]))
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        weights = Path(tmp, "global.safetensors")
        weights.write_bytes(record["weights"])
        preprocess = Path(tmp, "preprocess.json")
        preprocess.write_bytes(record["preprocess"])
        out = Path(tmp, "update.safetensors")
        done = subprocess.run(
            [str(node["airlock"]), "federate", "train-plain",
             "--federation", str(node["federation"]), "--site", str(node["site"]),
             "--data", str(node["data"]), "--key", str(node["key"]),
             "--round", str(record["round"]), "--weights", str(weights),
             "--preprocess", str(preprocess), "--out", str(out)],
            capture_output=True, text=True, check=True,
        )
        outcome = json.loads(done.stdout)
        reply = {"update": out.read_bytes(), "samples": int(outcome["samples"]),
                 "train_seconds": float(outcome["train_seconds"])}
    return Message(RecordDict({"plain": ConfigRecord(reply)}), reply_to=msg)
