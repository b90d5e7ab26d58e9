#!/usr/bin/env python3
"""Reference eNTK of entk's transformer for bench/ntk-transformer.ts (never needed by entk itself).

Reads the model written by bench/ntk-transformer.ts from --dir: meta.json (the TransformerSpec, the
weights as raw little-endian float32 files named by tfjs layer, the token inputs [N, 2L] and entk's
logits), rebuilds the same network in PyTorch as a function of a parameter dict (the forward pass of
src/model/transformer.ts):

  x = LN_emb(word[ids] + pos[0..L) (+ type[0]))
  post-LN block: x = LN(x + O(attn(Q x, K x, V x))); x = LN(x + W2 gelu(W1 x))
  pre-LN block:  x = x + O(attn(LN x)); x = x + W2 gelu(W1 LN x); final LN after the last block
  attn: per head softmax(Q_h K_h^T / sqrt(d) + b) V_h, b = 0 for a token key, -1e9 for a padding key
  pool: [CLS] (first position) or the masked mean; optional tanh pooler; head -> V logits

(tfjs Dense kernels are [in, out]: y = x W + b; gelu is the exact x Phi(x)), checks that its logits
equal entk's (relative max <= 1e-5; otherwise exits 2 before timing anything), then times the full
eNTK K[n*V+i, m*V+j] = <df_i(x_n), df_j(x_m)> over every parameter by functorch, as in its NTK
tutorial: vmap(jacrev(f)) over the points, then einsum('Naf,Mbf->NaMb') per parameter tensor.

Prints one JSON object on stdout; --save-k writes K (float32). Thread counts are fixed (--threads)
through the environment before torch loads.
"""
import json
import math
import sys

from common import jacobian_ntk, new_result, parse_args, read_f32, read_meta, timed, unavailable

MASK_BIAS = 1e9  # src/model/transformer-layers.ts ATTENTION_MASK_BIAS


def forward(torch, spec, p, ids, mask):
    """Logits [n, V] of token ids [n, L] (long) and mask [n, L] (float) under parameters p."""
    F = torch.nn.functional
    n, L = ids.shape
    W, H = spec["width"], spec["heads"]
    d = W // H
    eps = spec["layerNormEpsilon"]

    def dense(name, z):
        return z @ p[f"{name}/kernel"] + p[f"{name}/bias"]

    def norm(name, z):
        return F.layer_norm(z, (W,), p[f"{name}/gamma"], p[f"{name}/beta"], eps)

    x = p["embeddings/word/embeddings"][ids] + p["embeddings/position/embeddings"][:L].unsqueeze(0)
    if spec["typeVocabSize"] > 0:
        x = x + p["embeddings/token_type/embeddings"][0]
    if spec["embeddingNorm"]:
        x = norm("embeddings/norm", x)
    bias = ((mask - 1.0) * MASK_BIAS).reshape(n, 1, 1, L)

    def attention(b, z):
        def heads(t):
            return t.reshape(n, L, H, d).transpose(1, 2)

        q, k, v = (heads(dense(f"{b}/attention/{w}", z)) for w in ("query", "key", "value"))
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + bias, dim=-1)
        return dense(f"{b}/attention/output", (att @ v).transpose(1, 2).reshape(n, L, W))

    def mlp(b, z):
        return dense(f"{b}/mlp/dense2", F.gelu(dense(f"{b}/mlp/dense1", z)))

    for i in range(spec["layers"]):
        b = f"block{i}"
        if spec["norm"] == "pre":
            x = x + attention(b, norm(f"{b}/attention/norm", x))
            x = x + mlp(b, norm(f"{b}/mlp/norm", x))
        else:
            x = norm(f"{b}/attention/norm", x + attention(b, x))
            x = norm(f"{b}/mlp/norm", x + mlp(b, x))
    if spec["norm"] == "pre":
        x = norm("final_norm", x)
    if spec["pooling"] == "cls":
        pooled = x[:, 0]
    else:
        pooled = (x * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)
    if spec["pooler"]:
        pooled = torch.tanh(dense("pooler", pooled))
    return dense("head", pooled)


def main():
    args = parse_args(repeats=1)  # fixes the thread counts: numpy and torch load after it
    import numpy as np

    def read(entry):
        return read_f32(args.dir, entry)

    meta = read_meta(args.dir)
    spec = meta["spec"]
    result = new_result(args.threads)
    try:
        import torch

        try:
            from torch.func import jacrev, vmap
        except ImportError:  # torch < 2: the functorch package
            from functorch import jacrev, vmap
    except Exception as e:  # noqa: BLE001
        result["methods"]["functorch"] = unavailable(e)
        json.dump(result, sys.stdout)
        return
    torch.set_num_threads(args.threads)
    result["torch"] = torch.__version__
    params = {name: torch.from_numpy(read(entry).copy()) for name, entry in meta["weights"].items()}
    tokens = read(meta["x"])
    L = spec["maxLength"]
    ids = torch.from_numpy(tokens[:, :L].astype(np.int64))
    mask = torch.from_numpy(tokens[:, L:].copy())
    n = ids.shape[0]
    result["parameters"] = int(sum(t.numel() for t in params.values()))

    # The rebuilt network must be entk's: same logits before anything is timed.
    with torch.no_grad():
        logits = forward(torch, spec, params, ids, mask).numpy()
    expected = read(meta["logits"])
    rel = float(np.abs(logits - expected).max() / np.abs(expected).max())
    result["logitsRelMaxError"] = rel
    if not rel <= 1e-5:
        result["methods"]["functorch"] = {"available": False, "reason": f"logits differ from entk's: {rel:.3g}"}
        json.dump(result, sys.stdout)
        sys.exit(2)

    def f_single(p, ids_i, mask_i):
        return forward(torch, spec, p, ids_i.unsqueeze(0), mask_i.unsqueeze(0)).squeeze(0)

    def contraction():
        return jacobian_ntk(torch, vmap(jacrev(f_single), (None, 0, 0))(params, ids, mask), n)

    k, t = timed(contraction, args.repeats, warmup=1)
    result["methods"]["functorch"] = {"available": True, "n": n, **t}
    if args.save_k:
        k.detach().numpy().astype("<f4").tofile(args.save_k)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
