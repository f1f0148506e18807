"""What a user would otherwise write: the same two GPT-2 forward passes and metrics in
PyTorch eager, float32, CPU. Reads the benchmark's safetensors files and token ids.
Usage: python3 torchReference.py TEACHER_DIR STUDENT_DIR IDS_JSON
"""
import json
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

t_start = time.perf_counter()
torch.set_num_threads(2)


def load(folder):
    with open(f"{folder}/config.json") as f:
        cfg = json.load(f)
    raw = open(f"{folder}/model.safetensors", "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    data = memoryview(raw)[8 + n :]
    w = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        w[name] = torch.from_numpy(np.frombuffer(data[a:b], dtype=np.float32).reshape(info["shape"]).copy())
    return cfg, w


def gpt2_logits(cfg, w, ids):
    D, H = cfg["n_embd"], cfg["n_head"]
    L = ids.shape[0]
    x = w["wte.weight"][ids] + w["wpe.weight"][:L]
    mask = torch.full((L, L), float("-inf")).triu(1)
    for l in range(cfg["n_layer"]):
        p = f"h.{l}."
        h = F.layer_norm(x, (D,), w[p + "ln_1.weight"], w[p + "ln_1.bias"], 1e-5)
        q, k, v = (h @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]).split(D, dim=-1)
        q, k, v = (t.view(L, H, D // H).transpose(0, 1) for t in (q, k, v))
        # torch 1.13 (Debian) has no scaled_dot_product_attention
        scores = (q @ k.transpose(-1, -2)) / (D // H) ** 0.5 + mask
        a = (scores.softmax(-1) @ v).transpose(0, 1).reshape(L, D)
        x = x + a @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
        h = F.layer_norm(x, (D,), w[p + "ln_2.weight"], w[p + "ln_2.bias"], 1e-5)
        h = F.gelu(h @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"], approximate="tanh")
        x = x + h @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
    x = F.layer_norm(x, (D,), w["ln_f.weight"], w["ln_f.bias"], 1e-5)
    return x @ w["wte.weight"].T


if __name__ == "__main__":
    with torch.inference_mode():
        ids = torch.tensor(json.load(open(sys.argv[3])))
        t_cfg, t_w = load(sys.argv[1])
        s_cfg, s_w = load(sys.argv[2])
        t0 = time.perf_counter()
        zt = gpt2_logits(t_cfg, t_w, ids)[:-1]
        t1 = time.perf_counter()
        zs = gpt2_logits(s_cfg, s_w, ids)[:-1]
        t2 = time.perf_counter()
        y = ids[1:]
        lp, lq = F.log_softmax(zt, -1), F.log_softmax(zs, -1)
        p, q = lp.exp(), lq.exp()
        fkl = (p * (lp - lq)).sum(-1)
        rkl = (q * (lq - lp)).sum(-1)
        m = 0.5 * (p + q)
        lm = m.log()
        jsd = 0.5 * (p * (lp - lm)).sum(-1) + 0.5 * (q * (lq - lm)).sum(-1)
        tvd = 0.5 * (p - q).abs().sum(-1)
        skl = (p * (lp - (0.1 * p + 0.9 * q).log())).sum(-1)
        srkl = (q * (lq - (0.9 * p + 0.1 * q).log())).sum(-1)
        ent_t, ent_s = -(p * lp).sum(-1), -(q * lq).sum(-1)
        py, qy = p.gather(1, y[:, None])[:, 0], q.gather(1, y[:, None])[:, 0]
        rank_t = (zt > zt.gather(1, y[:, None])).sum(-1) + 1
        top_t, top_s = p.topk(5, -1), q.topk(5, -1)
        summary = [float(t.mean()) for t in (fkl, rkl, jsd, tvd, skl, srkl, ent_t, ent_s, py, qy)]
        t3 = time.perf_counter()

    # the BLAS PyTorch runs on: Debian's reference libblas3 is some 50x slower than OpenBLAS
    a, b = torch.randn(512, 768), torch.randn(768, 768)
    a @ b
    t4 = time.perf_counter()
    for _ in range(20):
        a @ b
    blas_gflops = 20 * 2 * 512 * 768 * 768 / (time.perf_counter() - t4) / 1e9
    print(json.dumps({"teacherMs": 1000 * (t1 - t0), "studentMs": 1000 * (t2 - t1), "metricsMs": 1000 * (t3 - t2), "inScriptMs": 1000 * (t3 - t_start), "meanFkl": summary[0], "blasGflops": blas_gflops}))
