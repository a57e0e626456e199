"""Check that a Quorum checkpoint is a real HF checkpoint: transformers loads it
(AutoModelForCausalLM / AutoTokenizer), renders the prompt with apply_chat_template and
enable_thinking exactly as `quorum generate` does, and its greedy tokens equal Quorum's.

    python benches/hf_checkpoint.py --model DIR [--quorum target/release/quorum] \
        [--prompt "Compute 347+589."] [--max-new-tokens 256]

Needs a venv with torch + transformers (e.g. the peers harness's). Exit 1 on a mismatch.
"""
import argparse, json, subprocess, sys


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--quorum", default="target/release/quorum")
    p.add_argument("--prompt", action="append")
    p.add_argument("--max-new-tokens", type=int, default=256)
    a = p.parse_args()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(a.model)
    model = AutoModelForCausalLM.from_pretrained(a.model, torch_dtype=torch.float32)
    model.eval()
    ok = True
    for prompt in a.prompt or ["Compute 347+589.", "Compute 86*7."]:
        for think in (True, False):
            msgs = [{"role": "user", "content": prompt}]
            text = tok.apply_chat_template(msgs, add_generation_prompt=True, enable_thinking=think,
                                           tokenize=False)
            # Quorum opens the think block when thinking is on (the server's and the trainer's
            # prompt: `<think>\n` after the generation prompt); Qwen3's template leaves it to the model.
            if think and not text.rstrip().endswith("<think>"):
                text += "<think>\n"
            ids = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
            with torch.no_grad():
                out = model.generate(ids, max_new_tokens=a.max_new_tokens, do_sample=False)
            hf = out[0, ids.shape[1]:].tolist()
            q = subprocess.run([a.quorum, "generate", "--model", a.model, "--prompt", prompt,
                                "--enable-thinking", str(think).lower(), "--temperature", "0",
                                "--max-tokens", str(a.max_new_tokens), "--json"],
                               capture_output=True, text=True, check=True)
            qj = json.loads(q.stdout)
            qt = qj["completions"][0]["token_ids"] if "completions" in qj else qj["choices"][0]["token_ids"]
            # HF keeps the eos in the output; Quorum stops before reporting text past it.
            eos = set(model.generation_config.eos_token_id if isinstance(model.generation_config.eos_token_id, list)
                      else [model.generation_config.eos_token_id])
            hf_cut = hf
            for i, t in enumerate(hf):
                if t in eos:
                    hf_cut = hf[: i + 1]
                    break
            same = hf_cut[: len(qt)] == qt and (len(hf_cut) == len(qt) or len(qt) == a.max_new_tokens)
            ok &= same
            print(f"{'same' if same else 'DIFFERENT'}  think={think}  prompt_tokens={ids.shape[1]}  "
                  f"tokens={len(qt)}  text={tok.decode(qt)!r}")
            if not same:
                print(f"  hf:     {hf_cut}\n  quorum: {qt}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
