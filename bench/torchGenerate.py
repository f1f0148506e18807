"""What a user would otherwise write: GPT-2 sampling with a key/value cache in PyTorch eager,
float32, CPU, 2 threads. Reads the benchmark's safetensors file and prompt ids.
Usage: python3 torchGenerate.py MODEL_DIR IDS_JSON BATCH NEW_TOKENS
Prints one JSON line: the time of the prompt and of the new tokens, and tokens per second.
"""
import json
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, __import__("os").path.dirname(__file__))
from torchReference import load  # noqa: E402  (reads the safetensors file)

torch.set_num_threads(2)


def step(cfg, w, ids, past):
    """Logits of the new positions and the extended cache: past is a list of (k, v) [B, H, P, hd]."""
    D, H = cfg["n_embd"], cfg["n_head"]
    B, L = ids.shape
    P = 0 if past is None else past[0][0].shape[2]
    x = w["wte.weight"][ids] + w["wpe.weight"][P : P + L]
    mask = torch.full((L, P + L), float("-inf")).triu(P + 1)
    present = []
    for l in range(cfg["n_layer"]):
        p = f"h.{l}."
        h = F.layer_norm(x, (D,), w[p + "ln_1.weight"], w[p + "ln_1.bias"], 1e-5)
        q, k, v = (h @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]).split(D, dim=-1)
        q, k, v = (t.view(B, L, H, D // H).transpose(1, 2) for t in (q, k, v))
        if past is not None:
            k = torch.cat([past[l][0], k], dim=2)
            v = torch.cat([past[l][1], v], dim=2)
        present.append((k, v))
        scores = (q @ k.transpose(-1, -2)) / (D // H) ** 0.5 + mask
        a = (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, L, D)
        x = x + a @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
        h = F.layer_norm(x, (D,), w[p + "ln_2.weight"], w[p + "ln_2.bias"], 1e-5)
        h = F.gelu(h @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"], approximate="tanh")
        x = x + h @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
    x = F.layer_norm(x, (D,), w["ln_f.weight"], w["ln_f.bias"], 1e-5)
    return x[:, -1] @ w["wte.weight"].T, present


with torch.inference_mode():
    cfg, w = load(sys.argv[1])
    prompt = torch.tensor(json.load(open(sys.argv[2])))
    B, N = int(sys.argv[3]), int(sys.argv[4])
    torch.manual_seed(0)
    ids = prompt.repeat(B, 1)
    t0 = time.perf_counter()
    logits, past = step(cfg, w, ids, None)
    t1 = time.perf_counter()
    for _ in range(N):
        nxt = torch.multinomial(logits.softmax(-1), 1)
        logits, past = step(cfg, w, nxt, past)
    t2 = time.perf_counter()
    print(json.dumps({"promptMs": 1000 * (t1 - t0), "newTokensMs": 1000 * (t2 - t1), "tokensPerSecond": B * N / (t2 - t1)}))
