"""PyTorch baseline for `make bench`: scan-triage's CNN (pipelines/scan-triage.toml)
trained the way airlock's trainer does it: the manifest's PNG scans decoded once, scaled
to [0, 1] and normalized with the train split's mean and standard deviation, shuffled per
epoch, Conv2d → BatchNorm2d (blocks 1 and 2) → ReLU → MaxPool2d(2) per block, flattened,
Linear → ReLU → inverted dropout → Linear, categorical cross-entropy on the logits, Adam
(eps 1e-8, L2 weight decay added to the gradient, as burn's Adam does), running loss and
accuracy read back once per epoch. Timed over the training steps only (decoding and
normalization excluded, as airlock's train_seconds excludes them).

Prints `parameters=N` (benches/train_cnn.rs checks it against the pipeline's model) and
`images_per_second=N`.
"""

import argparse
import csv
import os
import time

import torch
from PIL import Image

CLASSES = ["clear", "nodule", "mass"]


def load(manifest):
    folder = os.path.dirname(manifest)
    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f))
    images = []
    for r in rows:
        im = Image.open(os.path.join(folder, r["file"])).convert("L")
        side = im.size
        images.append(torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8))
    labels = [CLASSES.index(r["finding"]) for r in rows]
    x = torch.stack(images).reshape(len(rows), 1, side[1], side[0]).float().div_(255.0)
    return x, torch.tensor(labels, dtype=torch.long)


def model():
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 8, 5), nn.BatchNorm2d(8, eps=1e-5, momentum=0.1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3), nn.BatchNorm2d(16, eps=1e-5, momentum=0.1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 16, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 6 * 6, 32), nn.ReLU(), nn.Dropout(0.1),
        nn.Linear(32, 3),
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--train", type=float, default=0.7)
    ap.add_argument("--lr", type=float, default=0.003)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("RAYON_NUM_THREADS", "2")))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(42)

    x, y = load(args.manifest)
    g = torch.Generator().manual_seed(42)
    perm = torch.randperm(len(y), generator=g)
    n_train = round(len(y) * args.train)
    tr = perm[:n_train]
    mean, std = x[tr].mean(), x[tr].std(unbiased=False).clamp_min(1e-12)
    xt, yt = ((x[tr] - mean) / std).contiguous(), y[tr].contiguous()

    net = model()
    print(f"parameters={sum(p.numel() for p in net.parameters())}")
    opt = torch.optim.Adam(net.parameters(), lr=args.lr, eps=1e-8, weight_decay=args.weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss()
    net.train()
    elapsed = 0.0
    for _ in range(args.epochs):
        order = torch.randperm(n_train, generator=g)
        start = time.perf_counter()
        loss_sum = torch.zeros(())
        correct = torch.zeros(())
        for i in range(0, n_train, args.batch_size):
            idx = order[i:i + args.batch_size]
            xb, yb = xt[idx], yt[idx]
            z = net(xb)
            loss = loss_fn(z, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                loss_sum += loss.detach() * len(idx)
                correct += (z.argmax(1) == yb).sum()
        train_loss, train_acc = (loss_sum / n_train).item(), (correct / n_train).item()
        elapsed += time.perf_counter() - start
    print(f"pytorch {torch.__version__}, {torch.get_num_threads()} threads "
          f"(last epoch: train loss {train_loss:.4f}, train accuracy {train_acc:.3f})")
    print(f"images_per_second={n_train * args.epochs / elapsed:.1f}")


if __name__ == "__main__":
    main()
