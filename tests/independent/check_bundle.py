"""Check an airlock bundle with implementations that are not airlock's code.

- DSSE + ed25519: securesystemslib's Envelope.verify with a key loaded by `cryptography`,
  under a key id computed here (hex SHA-256 of the SPKI DER).
- safetensors: the reference reader (safetensors.numpy).

Usage: check_bundle.py BUNDLE_DIR BUILDER_PUB
Prints one JSON object: {"keyid": ..., "tensors": {name: [dtype, shape, sha256-of-bytes]}}.
Exits non-zero (with the reason on stderr) when the envelope does not verify or a subject
digest differs.
"""

import base64
import hashlib
import json
import sys

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key
from safetensors.numpy import load_file
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey


def main():
    bundle, pub_path = sys.argv[1], sys.argv[2]
    pub = load_pem_public_key(open(pub_path, "rb").read())
    keyid = hashlib.sha256(pub.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).hexdigest()
    key = SSlibKey.from_crypto(pub, keyid=keyid, scheme="ed25519")

    for name in ["statement.dsse.json", "provenance.dsse.json"]:
        env = Envelope.from_dict(json.load(open(f"{bundle}/{name}")))
        try:
            env.verify([key], 1)
        except Exception as e:  # VerificationError and friends
            sys.exit(f"{name}: DSSE verification failed: {e}")

    env = json.load(open(f"{bundle}/statement.dsse.json"))
    payload = base64.b64decode(env["payload"])
    if payload != open(f"{bundle}/statement.json", "rb").read():
        sys.exit("statement.json differs from the signed payload")
    statement = json.loads(payload)
    for subject in statement["subject"]:
        got = hashlib.sha256(open(f"{bundle}/{subject['name']}", "rb").read()).hexdigest()
        if got != subject["digest"]["sha256"]:
            sys.exit(f"{subject['name']}: digest {got} != {subject['digest']['sha256']}")

    tensors = load_file(f"{bundle}/model.safetensors")
    out = {
        name: [str(t.dtype), list(t.shape), hashlib.sha256(t.tobytes()).hexdigest()]
        for name, t in sorted(tensors.items())
    }
    print(json.dumps({"keyid": keyid, "tensors": out}))


if __name__ == "__main__":
    main()
