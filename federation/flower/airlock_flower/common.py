"""What the ServerApp and the ClientApp share: the file names that may cross, and how
they call airlock."""

import subprocess

# What a site's reply may carry (bytes), besides its outcome (text).
UPDATE_FILES = ("statistics.safetensors", "update.safetensors", "update.dsse.json")
# What the aggregator sends with each round: the previous round, as signed.
ROUND_FILES = ("global.safetensors", "preprocess.json", "round.dsse.json")
# The record in every message.
RECORD = "airlock"


def airlock(binary, *args):
    """Run `airlock federate ARGS...`; its stdout is JSON, its stderr the reason it failed."""
    return subprocess.run(
        [binary, "federate", *args], capture_output=True, text=True, check=False
    )


def last_line(text):
    """The last non-empty line of `text` (airlock's error), at most 500 characters."""
    lines = [line for line in text.splitlines() if line.strip()]
    return (lines[-1] if lines else "no output")[:500]
