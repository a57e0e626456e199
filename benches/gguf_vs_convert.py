"""Compare `quorum model gguf` with llama.cpp's own converter on one model dir.

Runs the vendored llama.cpp's convert_hf_to_gguf.py (from the sources that
benches/llamacpp_server.sh unpacks under ~/.cache/quorum-peers/) on DIR, then
reads both files with its gguf-py and compares every metadata key (type and
value) and every tensor (name, type, shape, bytes). The converter identifies
the pre-tokenizer by hashing a test string's tokens, which only works for
tokenizers it has seen; a vocabulary of our own is declared `qwen2` here.

    python benches/gguf_vs_convert.py --model models/tiny-reasoner-rl \\
        [--quorum target/release/quorum] [--dtype f32|f16] [--llama-src DIR]

Needs a venv with torch, transformers, sentencepiece, numpy. Exit 1 on a difference
other than general.name / general.size_label (cosmetic names).
"""
import argparse, os, runpy, subprocess, sys, tempfile

COSMETIC = {"general.name", "general.size_label"}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="models/tiny-reasoner-rl")
    p.add_argument("--quorum", default="target/release/quorum")
    p.add_argument("--dtype", default="f32")
    p.add_argument("--llama-src", default=os.path.expanduser(
        "~/.cache/quorum-peers/src/llama_cpp_python-0.3.36/vendor/llama.cpp"))
    a = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="gguf-vs-convert-")
    ours, ref = os.path.join(tmp, "quorum.gguf"), os.path.join(tmp, "convert.gguf")
    subprocess.run([a.quorum, "model", "gguf", "--model", a.model, "--out", ours,
                    "--dtype", a.dtype], check=True)
    sys.path.insert(0, a.llama_src)
    sys.path.insert(1, os.path.join(a.llama_src, "gguf-py"))
    import conversion.base as base
    known = base.TextModel.get_vocab_base_pre

    def pre(self, tok):
        try:
            return known(self, tok)
        except NotImplementedError:
            return "qwen2"
    base.TextModel.get_vocab_base_pre = pre
    argv = sys.argv
    sys.argv = ["convert_hf_to_gguf.py", a.model, "--outfile", ref, "--outtype", a.dtype]
    try:
        runpy.run_path(os.path.join(a.llama_src, "convert_hf_to_gguf.py"), run_name="__main__")
    except SystemExit as e:
        if e.code:
            raise
    sys.argv = argv
    from gguf import GGUFReader
    r_ours, r_ref = GGUFReader(ours), GGUFReader(ref)

    def fields(r):
        out = {}
        for k, f in r.fields.items():
            if k.startswith("GGUF."):
                continue
            out[k] = ([t.name for t in f.types], f.contents())
        return out
    fo, fr = fields(r_ours), fields(r_ref)
    diffs = 0
    for k in sorted(set(fo) | set(fr)):
        if k in COSMETIC:
            continue
        if fo.get(k) != fr.get(k):
            diffs += 1
            show = lambda v: v if v is None or len(repr(v)) < 200 else repr(v)[:200] + "..."
            print(f"metadata {k}: quorum {show(fo.get(k))} vs convert {show(fr.get(k))}")
    to = {t.name: t for t in r_ours.tensors}
    tr = {t.name: t for t in r_ref.tensors}
    for n in sorted(set(to) | set(tr)):
        x, y = to.get(n), tr.get(n)
        if x is None or y is None:
            diffs += 1
            print(f"tensor {n}: only in {'convert' if x is None else 'quorum'}")
            continue
        if (x.tensor_type != y.tensor_type or list(x.shape) != list(y.shape)
                or x.data.tobytes() != y.data.tobytes()):
            diffs += 1
            print(f"tensor {n}: quorum {x.tensor_type.name}{list(x.shape)} vs convert "
                  f"{y.tensor_type.name}{list(y.shape)} (bytes equal: {x.data.tobytes() == y.data.tobytes()})")
    print(f"quorum model gguf vs convert_hf_to_gguf.py ({a.model}, {a.dtype}): "
          f"{len(fr) - len(COSMETIC & set(fr))} metadata keys, {len(tr)} tensors, {diffs} differences")
    sys.exit(1 if diffs else 0)


if __name__ == "__main__":
    main()
