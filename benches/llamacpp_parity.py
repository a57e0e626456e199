"""Greedy parity of a Quorum model directory in llama.cpp's `llama-server`.

Exports the model to GGUF with `quorum model gguf`, starts llama-server on it
(loopback, a free port) and, for each prompt with thinking on and off, compares
`quorum generate --temperature 0 --json` with:

  1. chat: POST /v1/chat/completions (the model's chat template through
     llama.cpp's jinja engine, `chat_template_kwargs.enable_thinking`,
     temperature 0, top_k 1, `--reasoning-format none`), token ids from
     `logprobs`: the same prompt tokens, the same greedy tokens, and the same
     answer (the text after `</think>`);
  2. tokens: POST /completion with Quorum's exact prompt token ids: the greedy
     token ids must be Quorum's, one for one.

Quorum opens the think block itself (its think-on prompt ends in `<think>\n`);
the shipped template leaves that to the model, so a think-on chat through a
server that only runs the template gets a prompt two tokens shorter. The chat
check is run twice: with the shipped template, and with the template given an
`{% else %}<think>\n` branch (`--chat-template-file`), which opens the block
as Quorum does.

    python3 benches/llamacpp_parity.py [--model models/tiny-reasoner-rl] \\
        [--llama-server PATH] [--quorum target/release/quorum] [--max-tokens 256]

llama-server defaults to $QUORUM_LLAMA_SERVER, else `bash
benches/llamacpp_server.sh` builds it (~13 min on 2 cores, cached). Standard
library only. Exit 1 when the exact-prompt tokens or the opened-template chats differ.
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
    return j["prompt_token_ids"], c["token_ids"], c["text"], c["content"]


SHIPPED_TAIL = """    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\\n\\n</think>\\n\\n' }}
    {%- endif %}"""
OPENED_TAIL = """    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\\n\\n</think>\\n\\n' }}
    {%- else %}
        {{- '<think>\\n' }}
    {%- endif %}"""


def answer(text):
    return text.split("</think>")[-1].strip()


def start_server(server, gguf, tmp, tag, threads, template_file=None):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(os.path.join(tmp, f"llama-server-{tag}.log"), "w")
    cmd = [server, "-m", gguf, "--host", "127.0.0.1", "--port", str(port), "-t", str(threads),
           "-c", "2048", "-np", "1", "--jinja", "--reasoning-format", "none", "--no-warmup"]
    if template_file:
        cmd += ["--chat-template-file", template_file]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    return proc, base, log


def stop_server(proc, log):
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="models/tiny-reasoner-rl")
    p.add_argument("--quorum", default="target/release/quorum")
    p.add_argument("--llama-server", default=os.environ.get("QUORUM_LLAMA_SERVER"))
    p.add_argument("--dtype", default="f32")
    p.add_argument("--max-tokens", type=int, default=256)
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
    template = json.load(open(os.path.join(a.model, "tokenizer_config.json")))["chat_template"]
    opened_file = None
    if SHIPPED_TAIL in template:
        opened_file = os.path.join(tmp, "opened.jinja")
        with open(opened_file, "w") as f:
            f.write(template.replace(SHIPPED_TAIL, OPENED_TAIL))
    prompts = a.prompt or PROMPTS
    quorum = {(pr, th): quorum_generate(a.quorum, a.model, pr, th, a.max_tokens)
              for pr in prompts for th in (True, False)}
    counts = {}
    for tag, tfile in [("shipped", None), ("opened", opened_file)]:
        if tag == "opened" and not tfile:
            print("opened: the template's generation prompt is not the shipped one; skipped")
            continue
        proc, base, log = start_server(server, gguf, tmp, tag, a.threads, tfile)
        c = counts[tag] = {"prompt": 0, "tokens": 0, "answer": 0, "exact_prompt_tokens": 0, "cases": 0}
        try:
            wait_health(base, proc)
            for (prompt, think), (q_prompt, q_ids, q_text, q_content) in quorum.items():
                c["cases"] += 1
                msgs = [{"role": "user", "content": prompt}]
                kw = {"enable_thinking": think}
                rendered = post(base, "/apply-template",
                                {"messages": msgs, "chat_template_kwargs": kw})["prompt"]
                l_prompt = post(base, "/tokenize", {"content": rendered, "add_special": False,
                                                    "parse_special": True})["tokens"]
                prompt_same = l_prompt == q_prompt
                chat = post(base, "/v1/chat/completions", {
                    "messages": msgs, "chat_template_kwargs": kw, "temperature": 0, "top_k": 1,
                    "max_tokens": a.max_tokens, "logprobs": True, "top_logprobs": 1,
                    "cache_prompt": False})
                ch = chat["choices"][0]
                l_ids = [t["id"] for t in (ch.get("logprobs") or {}).get("content") or []]
                l_text = ch["message"].get("content") or ""
                tokens_same = prompt_same and l_ids == q_ids
                answer_same = answer(l_text) == q_content.strip()
                c["prompt"] += prompt_same
                c["tokens"] += tokens_same
                c["answer"] += answer_same
                if tag == "shipped":
                    comp = post(base, "/completion", {
                        "prompt": q_prompt, "temperature": 0, "top_k": 1, "n_predict": a.max_tokens,
                        "return_tokens": True, "cache_prompt": False})
                    exact_same = comp["tokens"] == q_ids
                    c["exact_prompt_tokens"] += exact_same
                    exact = f"  exact-prompt tokens {'same' if exact_same else 'DIFFERENT'}"
                else:
                    exact = ""
                print(f"[{tag}] think={think!s:5} {prompt!r}: prompt {'same' if prompt_same else 'DIFFERENT'} "
                      f"({len(l_prompt)} vs quorum {len(q_prompt)}), greedy tokens "
                      f"{'same' if tokens_same else 'DIFFERENT'} ({len(l_ids)} vs {len(q_ids)}), "
                      f"answer {'same' if answer_same else 'DIFFERENT'} {answer(l_text)!r}"
                      f"{'' if answer_same else ' vs quorum ' + repr(q_content.strip())}{exact}")
                if not tokens_same:
                    print(f"    llama.cpp: {l_prompt[len(q_prompt) - 4:] if prompt_same else l_prompt[-6:]} | {l_ids[:24]}\n"
                          f"    quorum:    {q_prompt[-6:]} | {q_ids[:24]}")
                if tag == "shipped" and not exact_same:
                    print(f"    exact-prompt llama.cpp: {comp['tokens']}\n    quorum:                 {q_ids}")
        finally:
            stop_server(proc, log)
    for tag, c in counts.items():
        n = c["cases"]
        line = (f"llama.cpp parity [{tag} template] ({a.model}, {a.dtype} GGUF, {n} chats): "
                f"prompt tokens {c['prompt']}/{n}, greedy tokens {c['tokens']}/{n}, answers {c['answer']}/{n}")
        if tag == "shipped":
            line += f"; from Quorum's prompt ids: greedy tokens {c['exact_prompt_tokens']}/{n}"
        print(line)
    ok = counts["shipped"]["exact_prompt_tokens"] == counts["shipped"]["cases"]
    if "opened" in counts:
        o = counts["opened"]
        ok &= o["tokens"] == o["cases"] and o["answer"] == o["cases"]
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
