"""airlock's ServerApp: each round, send the last signed round to every site, collect the
replies, and let `airlock federate aggregate` verify, average, sign and log them. It
resumes from the last signed round, so a restarted aggregator goes on where it stopped."""

import json
import tempfile
import time
from pathlib import Path

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.serverapp import Grid, ServerApp

from airlock_flower.common import RECORD, ROUND_FILES, UPDATE_FILES, airlock, last_line

app = ServerApp()


def run_json(cfg, *args):
    done = airlock(str(cfg["airlock"]), *args)
    if done.returncode != 0:
        raise SystemExit(f"airlock federate {args[0]}: {last_line(done.stderr)}")
    return json.loads(done.stdout)


def wait_for_sites(grid, sites, timeout):
    deadline = time.monotonic() + timeout
    while True:
        nodes = list(grid.get_node_ids())
        if len(nodes) >= sites or time.monotonic() > deadline:
            return nodes
        time.sleep(0.2)


def save_replies(replies, nodes, into):
    """Write each reply's allowed files into its own folder; return the senders that sent
    nothing usable, with Flower's or the site's reason, and the sites' outcomes. A reply
    that is malformed is left for airlock to refuse; it never stops the round."""
    missing, outcomes, answered = [], [], set()
    for m in replies:
        try:
            src = int(m.metadata.src_node_id)
            if src in answered:
                continue  # one reply per node; airlock also keeps one update per site
            answered.add(src)
            if m.has_error():
                missing.append(f"node {src}: {str(m.error.reason)[:300]}")
                continue
            folder = Path(into, f"node-{src}")
            folder.mkdir()
            record = m.content[RECORD] if RECORD in m.content else {}
            if not record:
                (folder / "no-airlock-record").write_bytes(b"")
            for key, value in record.items():
                if key in UPDATE_FILES and isinstance(value, bytes):
                    (folder / key).write_bytes(value)
                elif key == "outcome" and isinstance(value, str) and len(value) < 10_000:
                    try:
                        outcome = json.loads(value)
                        if isinstance(outcome, dict):
                            outcomes.append(outcome)
                    except (ValueError, RecursionError):
                        pass
                else:
                    # Anything else makes the reply refused by airlock (never written by name).
                    (folder / "unexpected-field").write_bytes(b"")
        except Exception as e:  # noqa: BLE001 - a reply must not stop the round
            missing.append(f"a malformed reply ({type(e).__name__})")
    missing += [f"node {n}" for n in nodes if n not in answered]
    return missing, outcomes


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    common = ["--federation", str(cfg["federation"]), "--state", str(cfg["state"])]
    status = run_json(cfg, "status", *common)
    work = Path(str(cfg["work"]))
    work.mkdir(parents=True, exist_ok=True)
    if status["next_round"] > 0:
        print(f"resuming after signed round {status['next_round'] - 1}")
    nodes = wait_for_sites(grid, status["sites"], float(cfg["connect-timeout"]))
    stop_after = int(cfg["stop-after-round"])
    latest = status["latest_dir"]
    for rnd in range(status["next_round"], status["rounds"] + 1):
        started = time.monotonic()
        nodes = list(grid.get_node_ids())
        payload = {"round": rnd}
        if latest:
            for name in ROUND_FILES:
                payload[name] = Path(latest, name).read_bytes()
        messages = [
            Message(RecordDict({RECORD: ConfigRecord(payload)}), n, "train", group_id=str(rnd))
            for n in nodes
        ]
        replies = list(grid.send_and_receive(messages, timeout=float(status["timeout"])))
        received = time.monotonic()
        with tempfile.TemporaryDirectory(dir=work) as tmp:
            missing, outcomes = save_replies(replies, nodes, tmp)
            args = ["aggregate", *common, "--key", str(cfg["key"]), "--round", str(rnd),
                    "--updates", tmp, "--audit-log", str(cfg["audit-log"])]
            for m in missing:
                args += ["--missing", m]
            done = airlock(str(cfg["airlock"]), *args)
        if done.returncode != 0:
            raise SystemExit(f"round {rnd}: {last_line(done.stderr)}")
        result = json.loads(done.stdout)
        result["wall_seconds"] = time.monotonic() - started
        result["reply_seconds"] = received - started
        result["sites"] = outcomes
        with open(work / "rounds.jsonl", "a", encoding="utf-8") as log:
            log.write(json.dumps(result) + "\n")
        print(summary(result), flush=True)
        latest = result["dir"]
        if 0 <= stop_after <= rnd:
            print(f"stopping after round {rnd} (stop-after-round)")
            return


def summary(r):
    sites = ", ".join(c["site"] for c in r["accepted"])
    line = f"round {r['round']}: {len(r['accepted'])} updates averaged ({sites})"
    if r["validation_loss"] is not None:
        line += f"; validation loss {r['validation_loss']:.4f}"
    if r["validation_accuracy"] is not None:
        line += f", accuracy {r['validation_accuracy']:.4f}"
    line += f"; {r['wall_seconds']:.1f} s"
    for x in r["refused"]:
        line += f"\n  left out: {x['from']}: {x['reason']}"
    return line
