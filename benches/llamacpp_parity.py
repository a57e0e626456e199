"""Greedy parity of a Quorum model directory in llama.cpp's `llama-server`.

Exports the model to GGUF with `quorum model gguf`, starts llama-server on it
(loopback, a free port) and, for each prompt with thinking on and off:

  1. chat: POST /v1/chat/completions (the model's chat template through
     llama.cpp's jinja engine, `chat_template_kwargs.enable_thinking`,
     temperature 0, top_k 1, `--reasoning-format none` so the text is raw),
     token ids from `logprobs`; compared with `quorum generate --temperature 0
     --json` as one sequence (prompt + generated): Quorum opens the think block
     itself (`<think>\\n` ends its prompt), llama.cpp's template leaves it to
     the model, so with thinking on the model's first two tokens in llama.cpp
     are Quorum's last two prompt tokens;
  2. tokens: POST /completion with Quorum's exact prompt token ids; the
     greedy token ids must be Quorum's, one for one.

    python3 benches/llamacpp_parity.py [--model models/tiny-reasoner-rl] \\
        [--llama-server PATH] [--quorum target/release/quorum] [--max-tokens 96]

llama-server defaults to $QUORUM_LLAMA_SERVER, else `bash
benches/llamacpp_server.sh` builds it (~13 min on 2 cores, cached). Standard
library only. Exit 1 on any difference.
"""
import argparse, json, os, socket, subprocess, sys, tempfile, time, urllib.request

PROMPTS = ["Compute 347+589.", "Compute 86*7.", "Compute 1234-567.", "Compute 45+78.",
           "Compute 12*34.", "Compute 905-318."]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(base, path, body, timeout=300):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def wait_health(base, proc, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"llama-server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(base + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.3)
    raise RuntimeError("llama-server did not become healthy")


def quorum_generate(q, model, prompt, think, max_tokens):
    out = subprocess.run([q, "generate", "--model", model, "--prompt", prompt,
                          "--enable-thinking", str(think).lower(), "--temperature", "0",
                          "--max-tokens", str(max_tokens), "--json"],
                         capture_output=True, text=True, check=True)
    j = json.loads(out.stdout)
    c = j["completions"][0]
    return j["prompt_token_ids"], c["token_ids"], c["text"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="models/tiny-reasoner-rl")
    p.add_argument("--quorum", default="target/release/quorum")
    p.add_argument("--llama-server", default=os.environ.get("QUORUM_LLAMA_SERVER"))
    p.add_argument("--dtype", default="f32")
    p.add_argument("--max-tokens", type=int, default=96)
    p.add_argument("--prompt", action="append")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    server = a.llama_server
    if not server:
        here = os.path.dirname(os.path.abspath(__file__))
        server = subprocess.run(["bash", os.path.join(here, "llamacpp_server.sh")],
                                capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    tmp = tempfile.mkdtemp(prefix="quorum-gguf-")
    gguf = os.path.join(tmp, "model.gguf")
    subprocess.run([a.quorum, "model", "gguf", "--model", a.model, "--out", gguf, "--dtype", a.dtype],
                   check=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(os.path.join(tmp, "llama-server.log"), "w")
    proc = subprocess.Popen([server, "-m", gguf, "--host", "127.0.0.1", "--port", str(port),
                             "-t", str(a.threads), "-c", "2048", "-np", "1", "--jinja",
                             "--reasoning-format", "none", "--no-warmup"],
                            stdout=log, stderr=subprocess.STDOUT)
    results = {"chat_same": 0, "tokens_same": 0, "prompt_same": 0, "cases": 0}
    try:
        wait_health(base, proc)
        for prompt in a.prompt or PROMPTS:
            for think in (True, False):
                results["cases"] += 1
                q_prompt, q_ids, q_text = quorum_generate(a.quorum, a.model, prompt, think,
                                                          a.max_tokens)
                msgs = [{"role": "user", "content": prompt}]
                kw = {"enable_thinking": think}
                rendered = post(base, "/apply-template",
                                {"messages": msgs, "chat_template_kwargs": kw})["prompt"]
                l_prompt = post(base, "/tokenize", {"content": rendered, "add_special": False,
                                                    "parse_special": True})["tokens"]
                # Quorum's prompt is the template's plus `<think>\n` when thinking is on.
                extra = q_prompt[len(l_prompt):]
                prompt_same = q_prompt[:len(l_prompt)] == l_prompt and (
                    (think and len(extra) == 2) or (not think and not extra))
                results["prompt_same"] += prompt_same
                chat = post(base, "/v1/chat/completions", {
                    "messages": msgs, "chat_template_kwargs": kw, "temperature": 0, "top_k": 1,
                    "max_tokens": a.max_tokens + len(extra), "logprobs": True, "top_logprobs": 1,
                    "cache_prompt": False})
                ch = chat["choices"][0]
                l_ids = [t["id"] for t in (ch.get("logprobs") or {}).get("content") or []]
                l_text = ch["message"].get("content") or ""
                extra_text = post(base, "/detokenize", {"tokens": extra})["content"] if extra else ""
                n = min(len(l_prompt) + len(l_ids), len(q_prompt) + len(q_ids))
                seq_same = (l_prompt + l_ids)[:n] == (q_prompt + q_ids)[:n]
                chat_same = seq_same and l_text == extra_text + q_text
                results["chat_same"] += chat_same
                comp = post(base, "/completion", {
                    "prompt": q_prompt, "temperature": 0, "top_k": 1, "n_predict": a.max_tokens,
                    "return_tokens": True, "cache_prompt": False})
                tokens_same = comp["tokens"] == q_ids
                results["tokens_same"] += tokens_same
                print(f"{'same' if chat_same and tokens_same else 'DIFFERENT'}  think={think!s:5}  "
                      f"prompt={prompt!r}  prompt_tokens={len(q_prompt)} (llama.cpp template "
                      f"{len(l_prompt)}, {'same' if prompt_same else 'DIFFERENT'})  "
                      f"tokens={len(q_ids)}  text={q_text!r}")
                if not chat_same:
                    print(f"  chat   llama.cpp: {l_ids} {l_text!r} ({ch.get('finish_reason')})\n"
                          f"         quorum:    {extra} + {q_ids} {extra_text + q_text!r}")
                if not tokens_same:
                    print(f"  tokens llama.cpp: {comp['tokens']}\n         quorum:    {q_ids}")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    c = results["cases"]
    print(f"llama.cpp parity ({a.model}, {a.dtype} GGUF): chat text+tokens {results['chat_same']}/{c}, "
          f"exact-prompt greedy tokens {results['tokens_same']}/{c}, "
          f"prompt tokens {results['prompt_same']}/{c}")
    ok = results["chat_same"] == c and results["tokens_same"] == c and results["prompt_same"] == c
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
