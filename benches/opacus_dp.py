"""Opacus baseline for `make bench` (benches/train_dp.rs): the fraud-detector MLP trained
with DP-SGD the way airlock's trainer does it (Poisson sampling at an expected batch of
256, per-example clipping to norm 1.0, Gaussian noise calibrated by Opacus's RDP
accountant to the target epsilon, Adam without weight decay), timed over the training
steps only, then the holdout ROC AUC.

Prints `rows_per_second=`, `epsilon=`, `sigma=` and `auc=` for the bench to read.
"""

import argparse
import csv
import os
import time

import torch
from opacus import PrivacyEngine

FEATURES = [
    "amount", "merchant_category", "hour", "distance_from_home_km", "txn_count_24h",
    "amount_to_avg_ratio", "is_online", "is_foreign", "card_present", "account_age_days",
    "days_since_last_txn", "failed_pin_attempts",
]


def auc(scores, labels):
    order = torch.argsort(scores)
    ranks = torch.empty_like(order, dtype=torch.float64)
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=torch.float64)
    pos = labels > 0.5
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--epsilon", type=float, required=True)
    ap.add_argument("--delta", type=float, required=True)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("RAYON_NUM_THREADS", "2")))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(42)

    with open(args.data, newline="") as f:
        rows = list(csv.DictReader(f))
    x = torch.tensor([[float(r[c]) for c in FEATURES] for r in rows], dtype=torch.float32)
    y = torch.tensor([float(r["fraud"]) for r in rows], dtype=torch.float32)
    g = torch.Generator().manual_seed(42)
    perm = torch.randperm(len(rows), generator=g)
    n_train = round(len(rows) * 0.7)
    n_val = round(len(rows) * 0.15)
    tr, ho = perm[:n_train], perm[n_train + n_val:]
    mean, std = x[tr].mean(0), x[tr].std(0, unbiased=False).clamp_min(1e-12)
    xt, yt = ((x[tr] - mean) / std).contiguous(), y[tr].contiguous()
    xh, yh = ((x[ho] - mean) / std).contiguous(), y[ho].contiguous()

    model = torch.nn.Sequential(
        torch.nn.Linear(12, 64), torch.nn.ReLU(),
        torch.nn.Linear(64, 32), torch.nn.ReLU(),
        torch.nn.Linear(32, 1),
    )
    opt = torch.optim.Adam(model.parameters(), lr=0.003)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(xt, yt), batch_size=args.batch_size, shuffle=True
    )
    engine = PrivacyEngine(accountant="rdp")
    model, opt, loader = engine.make_private_with_epsilon(
        module=model, optimizer=opt, data_loader=loader, epochs=args.epochs,
        target_epsilon=args.epsilon, target_delta=args.delta, max_grad_norm=1.0,
        poisson_sampling=True,
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()
    model.train()
    elapsed = 0.0
    for _ in range(args.epochs):
        start = time.perf_counter()
        for xb, yb in loader:
            if len(xb) == 0:
                continue
            z = model(xb).squeeze(1)
            loss = loss_fn(z, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        elapsed += time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        scores = model(xh).squeeze(1)
    print(f"pytorch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"rows_per_second={n_train * args.epochs / elapsed:.1f}")
    print(f"epsilon={engine.get_epsilon(args.delta):.4f}")
    print(f"sigma={opt.noise_multiplier:.4f}")
    print(f"auc={auc(scores, yh):.4f}")


if __name__ == "__main__":
    main()
