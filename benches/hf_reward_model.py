"""Check that a Quorum reward model is a real HF sequence classifier: transformers
loads it (AutoModelForSequenceClassification / AutoTokenizer), renders each
(prompt, completion) pair with apply_chat_template as Quorum does (the
conversation plus the completion as the assistant's message, no generation
prompt) and its score (label 0 at the last token) equals Quorum's `POST
/v1/score` from `quorum serve --model POLICY --reward-model RM`.

    python benches/hf_reward_model.py --rm DIR [--policy models/tiny-reasoner-rl] \\
        [--quorum target/release/quorum] [--tol 1e-4]

Needs a venv with torch + transformers. Exit 1 on a mismatch.
"""
import argparse, json, os, socket, subprocess, sys, tempfile, time, urllib.request

CASES = [
    ("Compute 347+589.", ["936", "The answer is 936.", "<think>\n347+589=936\n</think>\n\n936",
                          "935", "I don't know"]),
    ("Compute 86*7.", ["602", "<think>\n86*7 = 602\n</think>\n\n602", "612"]),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(base, path, body=None, timeout=120):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rm", required=True)
    p.add_argument("--policy", default="models/tiny-reasoner-rl")
    p.add_argument("--quorum", default="target/release/quorum")
    p.add_argument("--tol", type=float, default=1e-4)
    a = p.parse_args()
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(a.rm)
    model = AutoModelForSequenceClassification.from_pretrained(a.rm, torch_dtype=torch.float32)
    model.eval()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tempfile.NamedTemporaryFile("w", prefix="quorum-serve-", suffix=".log", delete=False)
    proc = subprocess.Popen([a.quorum, "serve", "--model", a.policy, "--reward-model", a.rm,
                             "--host", "127.0.0.1", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    ok, n, worst = True, 0, 0.0
    try:
        t0 = time.time()
        while True:
            if proc.poll() is not None:
                sys.exit(f"quorum serve exited with {proc.returncode}; log: {log.name}")
            try:
                models = http(base, "/v1/models", timeout=2)
                break
            except Exception:
                if time.time() - t0 > 120:
                    sys.exit(f"quorum serve not up after 120 s; log: {log.name}")
                time.sleep(0.3)
        model_id = models["data"][0]["id"]
        for prompt, completions in CASES:
            msgs = [{"role": "user", "content": prompt}]
            q = http(base, "/v1/score", {"model": model_id, "messages": msgs,
                                         "completions": completions})
            q_scores = [d["score"] for d in sorted(q["data"], key=lambda d: d["index"])]
            hf_tokens = 0
            for i, c in enumerate(completions):
                text = tok.apply_chat_template(msgs + [{"role": "assistant", "content": c}],
                                               tokenize=False, add_generation_prompt=False)
                ids = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
                hf_tokens += ids.shape[1]
                with torch.no_grad():
                    hf = model(input_ids=ids).logits[0, 0].item()
                diff = abs(hf - q_scores[i])
                worst = max(worst, diff)
                same = diff <= a.tol * max(1.0, abs(hf))
                ok &= same
                n += same
                print(f"{'same' if same else 'DIFFERENT'}  hf={hf:+.6f}  quorum={q_scores[i]:+.6f}  "
                      f"|diff|={diff:.2e}  tokens={ids.shape[1]}  {prompt!r} -> {c!r}")
            q_tokens = q.get("usage", {}).get("prompt_tokens")
            if q_tokens is not None and q_tokens != hf_tokens:
                ok = False
                print(f"DIFFERENT token counts: quorum usage.prompt_tokens={q_tokens}, hf={hf_tokens}")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    total = sum(len(c) for _, c in CASES)
    print(f"reward-model parity ({a.rm}): {n}/{total} scores within {a.tol:g} (max |diff| {worst:.2e})")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
