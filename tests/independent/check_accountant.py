#!/usr/bin/env python3
"""Independent check of airlock's DP-SGD privacy accountant against Opacus's.

Reads JSON on stdin: {"orders": [...], "cases": [{"q", "sigma", "steps", "delta",
"epsilon", "order"}, ...]} with airlock's answers, computes each case with Opacus's RDP
analysis (opacus/accountants/analysis/rdp.py: compute_rdp, get_privacy_spent), and prints
one JSON line per case with both answers. Exits 1 when any epsilon differs by more than 1%.

Opacus is installed without its dependencies (tests/setup-python.sh): rdp.py needs only
numpy and scipy, so it is loaded by file, without importing the opacus package (which
imports torch).
"""

import importlib.util
import json
import os
import sys


def load_rdp():
    spec = importlib.util.find_spec("opacus")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("opacus is not installed (tests/setup-python.sh installs it)")
    path = os.path.join(spec.submodule_search_locations[0], "accountants", "analysis", "rdp.py")
    module_spec = importlib.util.spec_from_file_location("opacus_rdp", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


# Opacus's default orders (opacus/accountants/rdp.py, DEFAULT_ALPHAS).
OPACUS_ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))


def main():
    rdp = load_rdp()
    request = json.load(sys.stdin)
    if [float(a) for a in request["orders"]] != [float(a) for a in OPACUS_ORDERS]:
        print("airlock's orders are not Opacus's defaults", file=sys.stderr)
        return 1
    worst = 0.0
    failed = 0
    for case in request["cases"]:
        per_step = rdp.compute_rdp(
            q=case["q"], noise_multiplier=case["sigma"], steps=1, orders=OPACUS_ORDERS
        )
        total = [r * case["steps"] for r in per_step]
        eps, order = rdp.get_privacy_spent(orders=OPACUS_ORDERS, rdp=total, delta=case["delta"])
        eps = max(float(eps), 0.0)
        ours = case["epsilon"]
        rel = abs(ours - eps) / max(eps, 1e-12)
        ok = rel <= 0.01 or abs(ours - eps) <= 1e-9
        worst = max(worst, rel if eps > 1e-9 else 0.0)
        failed += 0 if ok else 1
        print(json.dumps({**case, "opacus_epsilon": eps, "opacus_order": float(order), "ok": ok}))
    print(json.dumps({"cases": len(request["cases"]), "failed": failed, "worst_relative": worst}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
