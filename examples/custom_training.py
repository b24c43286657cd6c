"""Data-parallel SGD of an MLP on scikit-learn's digits with plain torch.distributed, reporting
to distbench through ``distbench.worker``. Runs alone, under torchrun, or as a distbench run:

    python examples/custom_training.py
    torchrun --nproc-per-node 2 examples/custom_training.py --lr 0.05
    distbench run --command "python examples/custom_training.py --lr 0.1" --workers 2 --wait
"""

import argparse

import torch
import torch.distributed as dist
from sklearn.datasets import load_digits
from torch import nn

from distbench import worker

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--lr", type=float, default=0.1, help="learning rate")
parser.add_argument("--epochs", type=int, default=30, help="at most this many epochs")
parser.add_argument("--target", type=float, default=0.95, help="validation accuracy to reach")
parser.add_argument("--batch-size", type=int, default=32, help="samples per step and rank")
args = parser.parse_args()

with worker.init() as session:
    torch.manual_seed(0)  # the same initial weights on every rank
    digits = load_digits()
    x = (torch.tensor(digits.data, dtype=torch.float32) / 16).to(session.device)
    y = torch.tensor(digits.target).to(session.device)  # small: the whole set on the device
    val, train = torch.randperm(len(y)).split([360, len(y) - 360])
    # Each rank trains on its own equal share (equal, or ranks' all-reduces would not pair up).
    train = train[: len(train) - len(train) % session.world_size]
    train, val = train[session.rank :: session.world_size], val[session.rank :: session.world_size]
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)).to(session.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    for epoch in range(1, args.epochs + 1):
        loss_sum = 0.0
        for batch in train[torch.randperm(len(train))].split(args.batch_size):
            with session.compute():
                optimizer.zero_grad()
                loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
                loss.backward()
            with session.communication():  # average the gradients over the ranks
                for parameter in model.parameters():
                    dist.all_reduce(parameter.grad)
                    parameter.grad /= session.world_size
            with session.compute():
                optimizer.step()
            loss_sum += loss.item() * len(batch)
        with torch.no_grad():
            accuracy = (model(x[val]).argmax(1) == y[val]).float().mean().item()
        # Collective: reports the means over ranks, with compute_s and communication_s.
        means = session.end_epoch(
            epoch, samples=len(train), train_loss=loss_sum / len(train), val_accuracy=accuracy
        )
        if session.is_leader:
            print(f"epoch {epoch}: " + ", ".join(f"{k} {v:.4g}" for k, v in means.items()))
        if means["val_accuracy"] >= args.target:
            seconds = session.target_reached()
            if session.is_leader:
                print(f"target {args.target} reached in {seconds:.2f} s")
            break
