"""PyTorch baseline for `make bench`: the fraud-detector MLP trained the way airlock's
trainer does it (standardize on the train split, shuffle per epoch, inverted dropout,
Adam with weight decay, running loss and accuracy), timed over the training steps only.

Prints `rows_per_second=N` for benches/train_throughput.rs to read.
"""

import argparse
import csv
import os
import time

import torch

FEATURES = [
    "amount", "merchant_category", "hour", "distance_from_home_km", "txn_count_24h",
    "amount_to_avg_ratio", "is_online", "is_foreign", "card_present", "account_age_days",
    "days_since_last_txn", "failed_pin_attempts",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--epochs", type=int, default=5)
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
    tr = perm[:n_train]
    mean, std = x[tr].mean(0), x[tr].std(0, unbiased=False).clamp_min(1e-12)
    xt, yt = ((x[tr] - mean) / std).contiguous(), y[tr].contiguous()

    model = torch.nn.Sequential(
        torch.nn.Linear(12, 64), torch.nn.ReLU(), torch.nn.Dropout(0.1),
        torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Dropout(0.1),
        torch.nn.Linear(32, 1),
    )
    # Adam with L2 weight decay added to the gradient, as burn's Adam does.
    opt = torch.optim.Adam(model.parameters(), lr=0.003, weight_decay=1e-4)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    model.train()
    elapsed = 0.0
    for epoch in range(args.epochs):
        order = torch.randperm(n_train, generator=g)
        start = time.perf_counter()
        loss_sum = torch.zeros(())
        correct = torch.zeros(())
        for i in range(0, n_train, args.batch_size):
            idx = order[i:i + args.batch_size]
            xb, yb = xt[idx], yt[idx]
            z = model(xb).squeeze(1)
            loss = loss_fn(z, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                loss_sum += loss.detach() * len(idx)
                correct += ((z > 0) == (yb > 0.5)).sum()
        _ = (loss_sum / n_train).item(), (correct / n_train).item()
        elapsed += time.perf_counter() - start
    print(f"pytorch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"rows_per_second={n_train * args.epochs / elapsed:.1f}")


if __name__ == "__main__":
    main()
