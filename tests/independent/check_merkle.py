"""Check airlock's audit-log proofs with a verifier written from the specifications alone.

- RFC 9162 (Certificate Transparency 2.0): §2.1.1 the Merkle Tree Hash (MTH), §2.1.3.2
  verifying an inclusion proof, §2.1.4.2 verifying a consistency proof.
- C2SP tlog-checkpoint (origin, size, base64 root, extension lines) in a C2SP signed-note:
  text, blank line, `— <key name> <base64(key hash || Ed25519 signature)>` lines; the
  key hash is the first 4 bytes of SHA-256(name || 0x0A || 0x01 || public key), and the
  signature is over the text including its final newline.

Usage: check_merkle.py --pubkey PUB.pem [--pubkey ...] [--log LOG.jsonl] PROOF.json...
       check_merkle.py --self-test
Prints `ok inclusion seq=N size=S`, `ok consistency from=M size=S` or `FAIL FILE: why` per
proof; exits 1 if any failed. With --log, the MTH of the log's first `size` lines (each
without its newline) is recomputed from the definition and compared with the checkpoint's
root (and with `from_root` for a consistency proof), and a proven entry with its line.
"""

import argparse
import base64
import hashlib
import json
import re
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key


class Fail(Exception):
    pass


def sha256(b):
    return hashlib.sha256(b).digest()


def leaf_hash(entry):  # RFC 9162 §2.1.1: MTH({d0}) = HASH(0x00 || d0)
    return sha256(b"\x00" + entry)


def node_hash(left, right):  # HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n]))
    return sha256(b"\x01" + left + right)


def split_point(n):  # the largest power of two smaller than n (n > 1)
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves, lo=0, hi=None):
    """MTH of leaves[lo:hi] (leaf hashes), by the RFC's recursive definition."""
    hi = len(leaves) if hi is None else hi
    n = hi - lo
    if n == 0:
        return sha256(b"")
    if n == 1:
        return leaves[lo]
    k = split_point(n)
    return node_hash(mth(leaves, lo, lo + k), mth(leaves, lo + k, hi))


def verify_inclusion(index, size, leaf, path, root):  # RFC 9162 §2.1.3.2
    if index >= size:
        raise Fail(f"leaf index {index} is not below the tree size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise Fail("inclusion path too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0 or r != root:
        raise Fail("inclusion path does not lead to the checkpoint's root")


def verify_consistency(first, second, first_hash, second_hash, path):  # RFC 9162 §2.1.4.2
    if first == second or first == 0:  # nothing to prove: the proof is empty
        if path:
            raise Fail("a proof from an empty or equal tree must be empty")
        if first == second and first_hash != second_hash:
            raise Fail("two trees of the same size with different roots")
        if first == 0 and first_hash != sha256(b""):
            raise Fail("the empty tree's root is SHA-256 of nothing")
        return
    if first > second:
        raise Fail(f"from_size {first} > tree_size {second}")
    if not path:  # 1.
        raise Fail("empty consistency path")
    if first & (first - 1) == 0:  # 2. first is an exact power of 2
        path = [first_hash] + path
    fn, sn = first - 1, second - 1  # 3.
    while fn & 1:  # 4.
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]  # 5.
    for c in path[1:]:  # 6.
        if sn == 0:
            raise Fail("consistency path too long")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0 or fr != first_hash or sr != second_hash:  # 7.
        raise Fail("consistency proof does not match the two roots")


def key_hash(name, raw_pub):  # C2SP signed-note, Ed25519 (type 0x01)
    return sha256(name.encode() + b"\n\x01" + raw_pub)[:4]


def open_note(note, pubs):
    """The verified text of a signed note: some signature by one of pubs verifies."""
    if re.search(r"[\x00-\x09\x0b-\x1f\x7f]", note):
        raise Fail("control characters in the note")
    text, sep, sigs = note.rpartition("\n\n")
    if not sep or not text or not sigs.endswith("\n"):
        raise Fail("not a signed note")
    text += "\n"
    for line in sigs[:-1].split("\n"):
        name, _, b64 = line.removeprefix("\u2014 ").partition(" ")
        if not line.startswith("\u2014 ") or not name or re.search(r"[\s+]", name):
            raise Fail(f"malformed signature line {line!r}")
        blob = base64.b64decode(b64, validate=True)
        for pub in pubs:
            raw = pub.public_bytes(Encoding.Raw, PublicFormat.Raw)
            if len(blob) == 68 and blob[:4] == key_hash(name, raw):
                try:
                    pub.verify(blob[4:], text.encode())
                    return text, name
                except InvalidSignature:
                    pass
    raise Fail("no signature on the note verifies with the given keys")


def open_checkpoint(note, pubs):
    """(size, root) of a C2SP checkpoint signed under its origin's name by one of pubs."""
    text, name = open_note(note, pubs)
    lines = text[:-1].split("\n")
    if len(lines) < 3 or "" in lines:
        raise Fail("a checkpoint is origin, size, root and non-empty extension lines")
    origin, size, root = lines[:3]
    if name != origin:
        raise Fail(f"signed under key name {name!r}, not the origin {origin!r}")
    if not re.fullmatch(r"0|[1-9][0-9]*", size):
        raise Fail(f"size {size!r} is not a decimal number")
    root = base64.b64decode(root, validate=True)
    if len(root) != 32:
        raise Fail("root is not a SHA-256 hash")
    return int(size), root


def unhex(h):
    if not re.fullmatch(r"[0-9a-f]{64}", h):
        raise Fail(f"{h!r} is not a lowercase hex SHA-256")
    return bytes.fromhex(h)


INCLUSION = {"seq", "entry", "tree_size", "hashes", "checkpoint"}
CONSISTENCY = {"from_size", "from_root", "tree_size", "hashes", "checkpoint"}


def check(proof, pubs, log_leaves, roots):
    size, root = open_checkpoint(proof["checkpoint"], pubs)
    if size != proof["tree_size"]:
        raise Fail(f"checkpoint size {size} != tree_size {proof['tree_size']}")
    if log_leaves is not None:
        if size > len(log_leaves):
            raise Fail(f"the log has {len(log_leaves)} lines, the checkpoint {size}")
        if size not in roots:
            roots[size] = mth(log_leaves, 0, size)
        if roots[size] != root:
            raise Fail(f"MTH of the log's first {size} lines is not the checkpoint's root")
    path = [unhex(h) for h in proof["hashes"]]
    if set(proof) == INCLUSION:
        seq, leaf = proof["seq"], leaf_hash(proof["entry"].encode())
        if seq < 1:
            raise Fail("seq starts at 1")
        verify_inclusion(seq - 1, size, leaf, path, root)
        if log_leaves is not None and log_leaves[seq - 1] != leaf:
            raise Fail(f"the entry is not line {seq} of the log")
        return f"inclusion seq={seq} size={size}"
    if set(proof) == CONSISTENCY:
        first, first_root = proof["from_size"], unhex(proof["from_root"])
        verify_consistency(first, size, first_root, root, path)
        if log_leaves is not None and mth(log_leaves, 0, first) != first_root:
            raise Fail(f"MTH of the log's first {first} lines is not from_root")
        return f"consistency from={first} size={size}"
    raise Fail(f"neither an inclusion nor a consistency proof: fields {sorted(proof)}")


def self_test():
    assert mth([]).hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    a, b, c = (hashlib.sha256(b"\x00" + x).digest() for x in (b"a", b"b", b"c"))
    ab = hashlib.sha256(b"\x01" + a + b).digest()
    assert mth([a, b, c]) == hashlib.sha256(b"\x01" + ab + c).digest()
    # RFC 6962's reference test data (certificate-transparency merkle_tree_test): roots of
    # the first 1..8 leaves.
    data = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
            "606162636465666768696a6b6c6d6e6f"]
    want = ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"]
    leaves = [leaf_hash(bytes.fromhex(d)) for d in data]
    assert [mth(leaves, 0, n).hex() for n in range(1, 9)] == want
    print("ok self-test: MTH of the empty tree, of 3 leaves by hand, RFC 6962 roots 1..8")

    # Proofs made by the RFC's PATH (§2.1.3.1) and SUBPROOF (§2.1.4.1), verified; edits refused.
    def path(m, lo, hi):
        if hi - lo <= 1:
            return []
        k = split_point(hi - lo)
        if m < k:
            return path(m, lo, lo + k) + [mth(leaves, lo + k, hi)]
        return path(m - k, lo + k, hi) + [mth(leaves, lo, lo + k)]

    def subproof(m, lo, hi, whole):
        if m == hi - lo:
            return [] if whole else [mth(leaves, lo, hi)]
        k = split_point(hi - lo)
        if m <= k:
            return subproof(m, lo, lo + k, whole) + [mth(leaves, lo + k, hi)]
        return subproof(m - k, lo + k, hi, False) + [mth(leaves, lo, lo + k)]

    def refused(f, *args):
        try:
            f(*args)
        except Fail:
            return True
        return False

    leaves = [leaf_hash(b"entry %d" % i) for i in range(21)]
    for n in range(1, 22):
        root = mth(leaves, 0, n)
        for i in range(n):
            p = path(i, 0, n)
            verify_inclusion(i, n, leaves[i], p, root)
            assert refused(verify_inclusion, i, n, leaf_hash(b"x"), p, root)
            assert refused(verify_inclusion, i, n, leaves[i], p + [root], root)
            assert n == 1 or refused(verify_inclusion, (i + 1) % n, n, leaves[i], p, root)
            assert n == 1 or refused(verify_inclusion, i, n, leaves[i], p[:-1], root)
        for m in range(n + 1):
            p = subproof(m, 0, n, True) if 0 < m < n else []
            verify_consistency(m, n, mth(leaves, 0, m), root, p)
            if 0 < m < n:
                assert refused(verify_consistency, m, n, mth(leaves, 0, m - 1), root, p)
                assert refused(verify_consistency, m, n, mth(leaves, 0, m), root, p[1:])
    print("ok self-test: every inclusion and consistency proof of trees of 1..21 leaves; edits refused")

    # The signed-note example of golang.org/x/mod/sumdb/note (C2SP signed-note).
    vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    name, khash, blob = vkey.split("+", 2)
    raw = base64.b64decode(blob)
    assert raw[0] == 1 and key_hash(name, raw[1:]).hex() == khash
    pub = Ed25519PublicKey.from_public_bytes(raw[1:])
    text = ("If you think cryptography is the answer to your problem,\n"
            "then you don't know what your problem is.\n")
    note = text + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
    assert open_note(note, [pub]) == (text, "PeterNeumann")
    assert refused(open_note, note.replace("answer", "Answer"), [pub])
    # A checkpoint signed here: opened; another key, an edited size, a wrong name refused;
    # a cosignature by another name beside it ignored.
    sk, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    body = f"example.org/log\n5\n{base64.b64encode(mth(leaves, 0, 5)).decode()}\ntime 2026-12-05T00:00:00Z\n"

    def sign(key, name, text):
        raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        sig = base64.b64encode(key_hash(name, raw) + key.sign(text.encode())).decode()
        return f"\u2014 {name} {sig}\n"

    cp = body + "\n" + sign(sk, "example.org/log", body)
    assert open_checkpoint(cp, [sk.public_key()]) == (5, mth(leaves, 0, 5))
    assert open_checkpoint(cp + sign(other, "witness", body), [other.public_key(), sk.public_key()])[0] == 5
    assert refused(open_checkpoint, cp, [other.public_key()])
    assert refused(open_checkpoint, cp.replace("\n5\n", "\n6\n", 1), [sk.public_key()])
    assert refused(open_checkpoint, body + "\n" + sign(sk, "other.org/log", body), [sk.public_key()])
    print("ok self-test: the sumdb/note example note and key hash; a checkpoint signed and edited")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pubkey", action="append", default=[], help="SPKI PEM Ed25519 key")
    ap.add_argument("--log", help="the log (JSON lines) to recompute MTH from")
    ap.add_argument("--self-test", action="store_true")
    ap.add_argument("proofs", nargs="*")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    if not args.pubkey or not args.proofs:
        ap.error("--pubkey and at least one proof are required")
    pubs = [load_pem_public_key(open(p, "rb").read()) for p in args.pubkey]
    if not all(isinstance(p, Ed25519PublicKey) for p in pubs):
        sys.exit("only Ed25519 keys sign checkpoints")
    log_leaves = None
    if args.log:
        lines = open(args.log, "rb").read().split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        log_leaves = [leaf_hash(line) for line in lines]
    failed, roots = False, {}
    for f in args.proofs:
        try:
            print("ok " + check(json.load(open(f, encoding="utf-8")), pubs, log_leaves, roots))
        except (Fail, ValueError, KeyError, TypeError) as e:
            print(f"FAIL {f}: {e}")
            failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
