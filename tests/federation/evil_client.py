"""A site gone bad, for airlock's tests. It wraps airlock's ClientApp and, in the rounds
its node config names (attack = "ROUND:MODE,ROUND:MODE"), misbehaves:

- leak-seal: plants one of its training rows in the trained update, then asks airlock to
  check and sign it (`airlock federate seal`): the site's own L2 must refuse it;
- leak-send: plants the row and sends the update anyway, with the statement airlock signed
  for the honest update: the aggregator must refuse it;
- unsigned: sends the honest update without its statement;
- replay: sends the reply it sent in the latest earlier round.

Every reply it sends is kept under its work folder for the replay."""

import csv
import json
import struct
import tempfile
import tomllib
from pathlib import Path

from flwr.app import ConfigRecord, Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp

from airlock_flower import client as honest
from airlock_flower.common import RECORD, ROUND_FILES, airlock, last_line

app = ClientApp()


def plant_row(update, node):
    """The update with the site's first training row's features, as f32, over the start
    of its largest tensor."""
    fed_path = Path(str(node["federation"]))
    fed = tomllib.loads(fed_path.read_text())
    pipeline = tomllib.loads((fed_path.parent / fed["federation"]["pipeline"]).read_text())
    with open(str(node["data"]), newline="") as f:
        row = next(csv.DictReader(f))
    values = [float(row[c]) for c in pipeline["data"]["features"]]
    n = struct.unpack("<Q", update[:8])[0]
    header = json.loads(update[8 : 8 + n])
    tensors = [(k, v) for k, v in header.items() if k != "__metadata__"]
    _, info = max(tensors, key=lambda kv: kv[1]["data_offsets"][1] - kv[1]["data_offsets"][0])
    start = 8 + n + info["data_offsets"][0]
    planted = struct.pack(f"<{len(values)}f", *values)
    return update[:start] + planted + update[start + len(planted) :]


def saved_rounds(work):
    folder = work / "replies"
    return sorted(int(p.name) for p in folder.iterdir()) if folder.exists() else []


@app.train()
def train(msg: Message, context: Context) -> Message:
    node = context.node_config
    plan = dict(x.split(":") for x in str(node.get("attack", "")).split(",") if x)
    rnd = int(msg.content[RECORD]["round"])
    mode = plan.get(str(rnd), "")
    work = Path(str(node["work"]))
    if mode == "replay":
        earlier = [r for r in saved_rounds(work) if r < rnd]
        folder = work / "replies" / str(earlier[-1])
        reply = {p.name: p.read_bytes() for p in folder.iterdir()}
        return Message(RecordDict({RECORD: ConfigRecord(reply)}), reply_to=msg)
    answer = honest.train(msg, context)
    if answer.has_error():
        return answer
    reply = dict(answer.content[RECORD].items())
    keep = work / "replies" / str(rnd)
    keep.mkdir(parents=True, exist_ok=True)
    for name, value in reply.items():
        if isinstance(value, bytes):
            (keep / name).write_bytes(value)
    if mode in ("leak-seal", "leak-send"):
        planted = plant_row(reply["update.safetensors"], node)
        if mode == "leak-send":
            reply["update.safetensors"] = planted
        else:
            with tempfile.TemporaryDirectory(dir=work) as tmp:
                received = Path(tmp, "global")
                received.mkdir()
                for name in ROUND_FILES:
                    (received / name).write_bytes(msg.content[RECORD][name])
                Path(tmp, "planted.safetensors").write_bytes(planted)
                done = airlock(
                    str(node["airlock"]), "seal",
                    "--federation", str(node["federation"]), "--site", str(node["site"]),
                    "--data", str(node["data"]), "--key", str(node["key"]),
                    "--round", str(rnd), "--global", str(received),
                    "--update", str(Path(tmp, "planted.safetensors")),
                    "--out", str(Path(tmp, "sealed")),
                )
                (work / f"seal-{rnd}.log").write_text(f"{done.returncode}\n{done.stderr}")
                if done.returncode != 0:
                    reason = f"site {node['site']}: {last_line(done.stderr)}"
                    return Message(Error(code=done.returncode, reason=reason), reply_to=msg)
                reply["update.safetensors"] = planted
    if mode == "unsigned":
        del reply["update.dsse.json"]
    return Message(RecordDict({RECORD: ConfigRecord(reply)}), reply_to=msg)
