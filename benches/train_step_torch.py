"""One training step in HF transformers on PyTorch eager: the reference for
`benches/train_step.rs` (same model directory, same batch, same loss).

    /work/pyenv/bin/python benches/train_step_torch.py --model DIR --batch BATCH.json \
        [--steps 3] [--threads 2]

BATCH.json is written by the Rust bench: {"seqs": [[token ids], ...]}, every
sequence the same length (so no padding). The step is: forward (logits of
every position, next-token NLL averaged over every predicted token), backward,
AdamW (torch defaults = candle-nn defaults: lr 1e-3, betas 0.9/0.999, eps
1e-8, weight decay 0.01) and zero_grad. Prints one JSON line on stdout:
tokens_per_s (median step), forward_s / backward_s / update_s (medians),
peak_rss_mb, loss (first step), steps.
"""

import argparse
import json
import resource
import statistics
import time

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--batch", required=True)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with open(args.batch) as f:
        seqs = json.load(f)["seqs"]
    ids = torch.tensor(seqs, dtype=torch.long)
    tokens = ids.numel()

    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)

    fwd, bwd, upd, total, losses = [], [], [], [], []
    for step in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        logits = model(input_ids=ids).logits
        vocab = logits.shape[-1]
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, vocab), ids[:, 1:].reshape(-1))
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        losses.append(loss.item())
        if step >= args.warmup:
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
            upd.append(t3 - t2)
            total.append(t3 - t0)

    out = {
        "tokens_per_s": tokens / statistics.median(total),
        "forward_s": statistics.median(fwd),
        "backward_s": statistics.median(bwd),
        "update_s": statistics.median(upd),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "loss": losses[0],
        "steps": args.steps,
        "threads": args.threads,
        "torch": torch.__version__,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
