"""Plain FedAvg's ServerApp: send the weights, average what comes back, weighted by
samples. The updates of one model share one canonical safetensors layout, so the average
is taken over the data section as one float32 array."""

import json
import struct
import time
from pathlib import Path

import numpy as np
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.serverapp import Grid, ServerApp

app = ServerApp()


def split(update):
    n = struct.unpack("<Q", update[:8])[0]
    return update[: 8 + n], np.frombuffer(update[8 + n :], dtype="<f4")


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    weights = Path(str(cfg["initial"])).read_bytes()
    preprocess = Path(str(cfg["preprocess"])).read_bytes()
    deadline = time.monotonic() + 60
    while len(list(grid.get_node_ids())) < int(cfg["sites"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    work = Path(str(cfg["work"]))
    work.mkdir(parents=True, exist_ok=True)
    for rnd in range(1, int(cfg["rounds"]) + 1):
        started = time.monotonic()
        nodes = list(grid.get_node_ids())
        payload = {"round": rnd, "weights": weights, "preprocess": preprocess}
        messages = [Message(RecordDict({"plain": ConfigRecord(payload)}), n, "train", group_id=str(rnd))
                    for n in nodes]
        replies = [m for m in grid.send_and_receive(messages, timeout=600) if not m.has_error()]
        received = time.monotonic()
        header, total, acc = None, 0, None
        for m in replies:
            r = m.content["plain"]
            h, values = split(r["update"])
            w = int(r["samples"])
            header = header or h
            acc = values.astype(np.float64) * w if acc is None else acc + values * w
            total += w
        weights = header + (acc / total).astype("<f4").tobytes()
        done = time.monotonic()
        result = {
            "round": rnd,
            "wall_seconds": done - started,
            "reply_seconds": received - started,
            "aggregate_seconds": done - received,
            "sites": [{"train_seconds": float(m.content["plain"]["train_seconds"])} for m in replies],
        }
        with open(work / "rounds.jsonl", "a", encoding="utf-8") as log:
            log.write(json.dumps(result) + "\n")
        print(f"plain round {rnd}: {len(replies)} updates averaged; {result['wall_seconds']:.1f} s", flush=True)
