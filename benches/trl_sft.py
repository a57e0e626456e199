"""TRL's SFTTrainer on CPU as the SFT throughput peer of `quorum train sft`.

    python benches/trl_sft.py --model DIR --data sft.jsonl [--steps 10] [--batch 64] \
        [--max-length 256] [--threads 2] [--lr 3e-3]

Same model directory and conversations (`{"messages": [...]}`; other keys are dropped) as the
Quorum run it is compared with (benches/sft_throughput.sh runs both in one sitting). Loss on
assistant tokens only (`assistant_only_loss` needs generation tags the Qwen3 template lacks, so
`completion_only_loss` on prompt/completion pairs is used: the same tokens are trained). Prints
per-step wall time after one warm-up step and trained-input tokens/s as JSON.
"""
import argparse, json, os, time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--out", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "trl_sft_out"))
    a = p.parse_args()
    import torch
    torch.set_num_threads(a.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    tok = AutoTokenizer.from_pretrained(a.model)
    rows = []
    with open(a.data) as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            msgs = r["messages"]
            kw = r.get("chat_template_kwargs") or {}
            prompt = tok.apply_chat_template(msgs[:-1], tokenize=False, add_generation_prompt=True, **kw)
            full = tok.apply_chat_template(msgs, tokenize=False, **kw)
            rows.append({"prompt": prompt, "completion": full[len(prompt):]})
            if len(rows) >= a.batch * (a.steps + 1):
                break
    ds = Dataset.from_list(rows)
    steps = []

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            steps.append(time.perf_counter() - self.t)

    cfg = SFTConfig(output_dir=a.out, use_cpu=True, max_steps=a.steps + 1, per_device_train_batch_size=a.batch,
                    gradient_accumulation_steps=1, max_length=a.max_length, learning_rate=a.lr,
                    logging_steps=1, save_strategy="no", report_to=[], bf16=False, packing=False,
                    completion_only_loss=True, dataset_kwargs={"add_special_tokens": False},
                    dataloader_num_workers=0, seed=0)
    tr = SFTTrainer(model=a.model, args=cfg, train_dataset=ds, processing_class=tok, callbacks=[Timer()])
    tr.train()
    ntok = [h["num_tokens"] for h in tr.state.log_history if "num_tokens" in h]
    timed = steps[1:] or steps
    per_step = sum(timed) / len(timed)
    tok_per_step = (ntok[-1] - ntok[0]) / (len(ntok) - 1) if len(ntok) > 1 else float("nan")
    print(json.dumps({"peer": f"trl {__import__('trl').__version__} SFTTrainer (cpu, torch {torch.__version__})",
                      "steps_timed": len(timed), "s_per_step": per_step, "tokens_per_step": tok_per_step,
                      "tokens_per_s": tok_per_step / per_step, "threads": a.threads}))


if __name__ == "__main__":
    main()
