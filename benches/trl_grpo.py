"""TRL's GRPOTrainer on CPU as the GRPO throughput peer of `quorum train grpo`.

    python benches/trl_grpo.py --model DIR --data tasks.jsonl [--steps 6] [--group-size 8] \
        [--prompts-per-step 8] [--max-completion-tokens 128] [--temperature 1.0] [--threads 2] \
        [--lr 1e-4]

Same model directory and prompt tasks (`{"prompt", "answer", ...}`) as the Quorum run it is
compared with (benches/grpo_throughput.sh runs both in one sitting). The prompt is rendered as
Quorum renders it with think on: the chat template with `enable_thinking=True` plus the opened
think block (`<think>\\n`, which Qwen3's template leaves to the model), passed to TRL as plain
text. Reward: 1 if the last `\\boxed{}` after `</think>` equals the reference answer (numerically),
else 0. Objective as Quorum's recipe: beta 0 (no reference model), token aggregation (`dapo`),
one iteration per batch, G generations per prompt, prompts x G completions per optimizer step,
constant lr; gradient checkpointing off (TRL's default is on; `--gradient-checkpointing` restores it).
Prints the per-step wall time after one warm-up step, the rollout (generate + score) time and the
completion tokens per step as JSON.
"""
import argparse, json, os, re, resource, time


def boxed_answer(text):
    """The content of the last `\\boxed{...}` after `</think>` (braces balanced), or None."""
    tail = text.rsplit("</think>", 1)
    if len(tail) < 2:
        return None
    tail = tail[1]
    start = tail.rfind("\\boxed{")
    if start < 0:
        return None
    i, depth = start + len("\\boxed{"), 1
    for j in range(i, len(tail)):
        if tail[j] == "{":
            depth += 1
        elif tail[j] == "}":
            depth -= 1
            if depth == 0:
                return tail[i:j]
    return None


def same_number(got, want):
    if got is None:
        return False
    g, w = got.replace(",", "").replace(" ", ""), str(want).replace(",", "").replace(" ", "")
    if g == w:
        return True
    try:
        return abs(float(g) - float(w)) < 1e-9
    except ValueError:
        return False


def correct_reward(prompts, completions, answer, **kw):
    return [1.0 if same_number(boxed_answer(c), a) else 0.0 for c, a in zip(completions, answer)]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--prompts-per-step", type=int, default=8)
    p.add_argument("--max-completion-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--gradient-checkpointing", action="store_true",
                   help="TRL's default (recomputes the forward in the update); off here like Quorum")
    p.add_argument("--out", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "trl_grpo_out"))
    a = p.parse_args()
    import torch
    torch.set_num_threads(a.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    tok = AutoTokenizer.from_pretrained(a.model)
    rows = []
    with open(a.data) as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            text = tok.apply_chat_template([{"role": "user", "content": r["prompt"]}], tokenize=False,
                                           add_generation_prompt=True, enable_thinking=True)
            if not text.rstrip().endswith("<think>"):
                text += "<think>\n"
            rows.append({"prompt": text, "answer": str(r["answer"])})
            if len(rows) >= a.prompts_per_step * (a.steps + 1):
                break
    ds = Dataset.from_list(rows)
    steps, rollouts, gens, ntoks = [], [], [], []

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            steps.append(time.perf_counter() - self.t)

    class TimedGRPO(GRPOTrainer):
        def _generate_and_score_completions(self, inputs):
            t = time.perf_counter()
            out = super()._generate_and_score_completions(inputs)
            rollouts.append(time.perf_counter() - t)
            return out

        def _generate_single_turn(self, *args, **kw):
            t = time.perf_counter()
            out = super()._generate_single_turn(*args, **kw)
            gens.append(time.perf_counter() - t)
            ntoks.append(sum(len(c) for c in out[0]))  # completion ids, eos included
            return out

    batch = a.prompts_per_step * a.group_size
    cfg = GRPOConfig(output_dir=a.out, use_cpu=True, max_steps=a.steps + 1,
                     per_device_train_batch_size=batch, gradient_accumulation_steps=1,
                     generation_batch_size=batch, num_generations=a.group_size,
                     max_completion_length=a.max_completion_tokens, temperature=a.temperature,
                     top_p=1.0, top_k=0, beta=0.0, loss_type="dapo", num_iterations=1,
                     epsilon=0.2, learning_rate=a.lr, lr_scheduler_type="constant", warmup_steps=0,
                     weight_decay=0.0, max_grad_norm=1.0, use_vllm=False, bf16=False, fp16=False,
                     gradient_checkpointing=a.gradient_checkpointing,
                     logging_steps=1, save_strategy="no", eval_strategy="no", report_to=[],
                     log_completions=False, dataloader_num_workers=0, seed=0)
    tr = TimedGRPO(model=a.model, reward_funcs=correct_reward, args=cfg, train_dataset=ds,
                   processing_class=tok, callbacks=[Timer()])
    tr.train()
    rewards = [h["reward"] for h in tr.state.log_history if "reward" in h]
    n = len(steps)
    timed = slice(1, n) if n > 1 else slice(0, n)
    st, ro, ge, nt = steps[timed], rollouts[timed], gens[timed], ntoks[timed]
    mean = lambda xs: sum(xs) / len(xs)
    print(json.dumps({
        "peer": f"trl {__import__('trl').__version__} GRPOTrainer (cpu, torch {torch.__version__})",
        "steps_timed": len(st), "s_per_step": mean(st), "rollout_s": mean(ro), "generate_s": mean(ge),
        "update_s": mean(st) - mean(ro), "completion_tokens_per_step": mean(nt),
        "rollout_tokens_per_s": sum(nt) / sum(ro), "generate_tokens_per_s": sum(nt) / sum(ge),
        "reward_mean": mean(rewards[timed]) if rewards else None,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": a.threads, "gradient_checkpointing": a.gradient_checkpointing,
        "step_s": steps, "rollout_tokens": ntoks}))


if __name__ == "__main__":
    main()
