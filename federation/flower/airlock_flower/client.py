"""airlock's ClientApp: a site's round. Flower brings the round's global model; the site's
`airlock federate site` verifies it, trains on the site's own data, checks the update with
L0 to L2 against that data and signs it. Nothing else leaves: when airlock refuses, the
reply is an error carrying only airlock's reason."""

import tempfile
from pathlib import Path

from flwr.app import ConfigRecord, Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp

from airlock_flower.common import RECORD, ROUND_FILES, airlock, last_line

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    node = context.node_config
    record = msg.content[RECORD]
    rnd = int(record["round"])
    work = Path(str(node["work"]))
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        out = Path(tmp, "update")
        args = [
            "site",
            "--federation", str(node["federation"]),
            "--site", str(node["site"]),
            "--data", str(node["data"]),
            "--key", str(node["key"]),
            "--round", str(rnd),
            "--out", str(out),
        ]
        if rnd > 0:
            received = Path(tmp, "global")
            received.mkdir()
            for name in ROUND_FILES:
                value = record.get(name)
                if isinstance(value, bytes):
                    (received / name).write_bytes(value)
            args += ["--global", str(received)]
        done = airlock(str(node["airlock"]), *args)
        if done.returncode != 0:
            reason = f"site {node['site']}: {last_line(done.stderr)}"
            return Message(Error(code=done.returncode, reason=reason), reply_to=msg)
        reply = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
        reply["outcome"] = done.stdout
        return Message(RecordDict({RECORD: ConfigRecord(reply)}), reply_to=msg)
