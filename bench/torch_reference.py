#!/usr/bin/python3
"""The PyTorch side of `payless bench compare`: the same workloads, written as a PyTorch user would.

What it is: nn.Module models with the shapes of apps/bench_common.cpp (workload_model_config), the
conv layers in plain PyTorch the way fairseq's CPU path computes them (pad, unfold the time axis,
one bmm per position and head), attention by hand (torch 1.13 has no scaled_dot_product_attention),
torch.optim.Adam, F.cross_entropy with label smoothing, incremental decoding with key/value caches
and conv buffers, and the same timing rule (median of the timed runs after the warm-up). It prints
JSON lines with the fields of `payless bench` and "impl": "torch".
What it is not: a test, or needed by CI. Run by hand with Debian's python3-torch:

    /usr/bin/python3 bench/torch_reference.py train --config small --task lm --arch dynamic --threads 2

Thread counts must be in the environment before torch is imported (OpenBLAS reads
OPENBLAS_NUM_THREADS once; torch.set_num_threads does not reach it), so this script sets
OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and OMP_WAIT_POLICY=PASSIVE (unless set) first.
Definitions of every workload: docs/benchmarks.md.
"""
import argparse
import json
import math
import os
import resource
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=["train", "decode", "layer", "ops"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--config", default="tiny,small,iwslt")
    p.add_argument("--task", default="lm,mt")
    p.add_argument("--arch", default="transformer,lightweight,dynamic")
    p.add_argument("--warmup", type=int, default=-1)
    p.add_argument("--reps", type=int, default=-1)
    p.add_argument("--lengths", default="64,128,256,512,1024,2048")
    p.add_argument("--batches", default="1,32")
    return p.parse_args()


ARGS = parse_args()
os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)
os.environ["OPENBLAS_NUM_THREADS"] = str(ARGS.threads)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402  (after the thread settings, on purpose)
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(ARGS.threads)
PAD, EOS = 1, 2
ALIASES = {"lightconv": "lightweight", "light": "lightweight", "dynamicconv": "dynamic", "dyn": "dynamic",
           "translation": "mt"}


def rss_mb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def load_average():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def median_seconds(warmup, reps, fn):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(reps, 1)):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def emit(line):
    line["impl"] = "torch"
    print(json.dumps(line), flush=True)


# ---- configurations (the same numbers as workload_model_config in apps/bench_common.cpp)

def workload_config(config, task, arch):
    sizes = {
        "tiny": dict(d=64, F=128, V=1000, enc_layers=2, dec_layers=2, enc_k=[3, 7], dec_k=[3, 7]),
        "small": dict(d=256, F=512, V=8000, enc_layers=3, dec_layers=3, enc_k=[3, 7, 15], dec_k=[3, 7, 15]),
        "iwslt": dict(d=512, F=1024, V=10000, enc_layers=7, dec_layers=6,
                      enc_k=[3, 7, 15, 31, 31, 31, 31], dec_k=[3, 7, 15, 31, 31, 31]),
    }[config]
    return dict(sizes, H=4, task=task, arch=arch, dropout=0.1, attention_dropout=0.1, weight_dropout=0.1)


def sinusoidal_table(num, d):
    # fairseq: sines then cosines, frequencies exp(-i·log(10000)/(half-1)); row PAD is zero and the
    # first real position is PAD+1.
    half = d // 2
    freq = torch.exp(torch.arange(half, dtype=torch.float) * -(math.log(10000) / (half - 1)))
    args = torch.arange(num, dtype=torch.float).unsqueeze(1) * freq.unsqueeze(0)
    table = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    table[PAD] = 0
    return table


class Attention(nn.Module):
    def __init__(self, d, heads, dropout):
        super().__init__()
        self.h, self.dh, self.dropout = heads, d // heads, dropout
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))

    def split(self, x):  # (B, T, d) -> (B, H, T, D)
        B, T, _ = x.shape
        return x.view(B, T, self.h, self.dh).transpose(1, 2)

    def attend(self, q, k, v, causal):
        scores = torch.matmul(q, k.transpose(-1, -2))  # (B, H, T, S)
        if causal:
            T, S = scores.shape[-2:]
            mask = torch.triu(torch.ones(T, S, dtype=torch.bool), diagonal=1 + S - T)
            scores = scores.masked_fill(mask, float("-inf"))
        p = F.dropout(F.softmax(scores, dim=-1), self.dropout, self.training)
        o = torch.matmul(p, v)  # (B, H, T, D)
        B, H, T, D = o.shape
        return self.out_proj(o.transpose(1, 2).reshape(B, T, H * D))

    def forward(self, x, kv, causal=False):
        q = self.split(self.q_proj(x) * self.dh ** -0.5)
        return self.attend(q, self.split(self.k_proj(kv)), self.split(self.v_proj(kv)), causal)

    def step(self, x, cache, kv=None):
        """Incremental: x (B, 1, d). Self-attention appends to cache; encoder attention (kv given)
        projects the encoder output once."""
        q = self.split(self.q_proj(x) * self.dh ** -0.5)
        if kv is not None:
            if "k" not in cache:
                cache["k"], cache["v"] = self.split(self.k_proj(kv)), self.split(self.v_proj(kv))
        else:
            k, v = self.split(self.k_proj(x)), self.split(self.v_proj(x))
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        return self.attend(q, cache["k"], cache["v"], causal=False)


def unfold_time(x, K, P):
    """x (B, T, C) -> (B, T, C, K): window k of position t is x[t + k - P] (zeros outside)."""
    return F.pad(x, (0, 0, P, K - 1 - P)).unfold(1, K, 1)


class LightweightConv(nn.Module):
    def __init__(self, C, K, H, P, weight_dropout):
        super().__init__()
        self.C, self.K, self.H, self.P, self.weight_dropout = C, K, H, P, weight_dropout
        self.weight = nn.Parameter(torch.empty(H, K))
        nn.init.xavier_uniform_(self.weight.view(H, 1, K))

    def forward(self, x):
        B, T, C = x.shape
        H, K, R = self.H, self.K, C // self.H
        w = F.softmax(self.weight, dim=-1)
        # fairseq's unfolded path: the kernel expanded to every (position, head), DropConnect on it.
        w = w.view(1, H, K).expand(B * T, H, K).contiguous().view(B * T * H, K, 1)
        w = F.dropout(w, self.weight_dropout, self.training)
        xu = unfold_time(x, K, self.P).reshape(B * T * H, R, K)
        return torch.bmm(xu, w).view(B, T, C)

    def kernel(self, x):  # (B, H, K) for one decoding step
        return F.softmax(self.weight, dim=-1).unsqueeze(0).expand(x.shape[0], -1, -1)


class DynamicConv(nn.Module):
    def __init__(self, C, K, H, P, weight_dropout):
        super().__init__()
        self.C, self.K, self.H, self.P, self.weight_dropout = C, K, H, P, weight_dropout
        self.weight_linear = nn.Linear(C, H * K, bias=False)
        nn.init.xavier_uniform_(self.weight_linear.weight)

    def forward(self, x):
        B, T, C = x.shape
        H, K, R = self.H, self.K, C // self.H
        w = F.softmax(self.weight_linear(x).view(B * T * H, K), dim=-1)
        w = F.dropout(w, self.weight_dropout, self.training).unsqueeze(2)  # (B·T·H, K, 1)
        xu = unfold_time(x, K, self.P).reshape(B * T * H, R, K)
        return torch.bmm(xu, w).view(B, T, C)

    def kernel(self, x):  # x (B, 1, C) -> (B, H, K)
        return F.softmax(self.weight_linear(x).view(x.shape[0], self.H, self.K), dim=-1)


def conv_step(conv, x, cache):
    """One causal step: x (B, 1, C); cache["buf"] (B, K, C) holds the last K inputs, zeros at first."""
    B, _, C = x.shape
    H, K, R = conv.H, conv.K, C // conv.H
    buf = cache.get("buf")
    if buf is None:
        buf = x.new_zeros(B, K, C)
    buf = torch.cat([buf[:, 1:], x], dim=1)
    cache["buf"] = buf
    xu = buf.transpose(1, 2).reshape(B * H, R, K)
    return torch.bmm(xu, conv.kernel(x).reshape(B * H, K, 1)).view(B, 1, C)


class Layer(nn.Module):
    """One encoder or decoder layer: a conv block or self-attention, optional encoder attention,
    then the FFN; residuals with pre- or post-norm, as in apps/bench_common.cpp's models."""

    def __init__(self, c, kernel, causal, cross, pre_norm):
        super().__init__()
        d, H = c["d"], c["H"]
        self.arch, self.causal, self.pre_norm, self.dropout = c["arch"], causal, pre_norm, c["dropout"]
        if self.arch == "transformer":
            self.self_attn = Attention(d, H, c["attention_dropout"])
        else:
            self.linear1, self.linear2 = nn.Linear(d, d), nn.Linear(d, d)
            P = kernel - 1 if causal else kernel // 2
            cls = DynamicConv if self.arch == "dynamic" else LightweightConv
            self.conv = cls(d, kernel, H, P, c["weight_dropout"])
        self.norm1 = nn.LayerNorm(d)
        self.cross = Attention(d, H, c["attention_dropout"]) if cross else None
        self.norm_cross = nn.LayerNorm(d) if cross else None
        self.fc1, self.fc2 = nn.Linear(d, c["F"]), nn.Linear(c["F"], d)
        self.norm2 = nn.LayerNorm(d)

    def residual(self, x, norm, f):
        h = f(norm(x) if self.pre_norm else x)
        h = x + F.dropout(h, self.dropout, self.training)
        return h if self.pre_norm else norm(h)

    def mixer(self, x):
        if self.arch == "transformer":
            return self.self_attn(x, x, causal=self.causal)
        return self.linear2(self.conv(self.linear1(x)))

    def mixer_step(self, x, state):
        if self.arch == "transformer":
            return self.self_attn.step(x, state.setdefault("self", {}))
        return self.linear2(conv_step(self.conv, self.linear1(x), state.setdefault("conv", {})))

    def rest(self, x, enc, cross):
        if self.cross is not None:
            x = self.residual(x, self.norm_cross, cross)
        return self.residual(x, self.norm2, lambda y: self.fc2(F.relu(self.fc1(y))))

    def forward(self, x, enc=None):
        x = self.residual(x, self.norm1, self.mixer)
        return self.rest(x, enc, lambda y: self.cross(y, enc))

    def step(self, x, enc, state):
        x = self.residual(x, self.norm1, lambda y: self.mixer_step(y, state))
        return self.rest(x, enc, lambda y: self.cross.step(y, state.setdefault("cross", {}), enc))


class Model(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, V = c["d"], c["V"]
        self.c, self.d, self.mt = c, d, c["task"] == "mt"
        self.embed = nn.Embedding(V, d, padding_idx=PAD)
        nn.init.normal_(self.embed.weight, 0, d ** -0.5)
        self.register_buffer("positions", sinusoidal_table(1026, d), persistent=False)
        lm = not self.mt
        self.decoder = nn.ModuleList(Layer(c, k, True, self.mt, pre_norm=lm) for k in c["dec_k"][: c["dec_layers"]])
        if self.mt:
            self.src_embed = nn.Embedding(V, d, padding_idx=PAD)
            nn.init.normal_(self.src_embed.weight, 0, d ** -0.5)
            self.encoder = nn.ModuleList(Layer(c, k, False, False, False) for k in c["enc_k"][: c["enc_layers"]])

    def embed_tokens(self, table, tokens, start=0):
        T = tokens.shape[1]
        x = table(tokens) * math.sqrt(self.d) + self.positions[PAD + 1 + start: PAD + 1 + start + T]
        return F.dropout(x, self.c["dropout"], self.training)

    def encode(self, src):
        x = self.embed_tokens(self.src_embed, src)
        for layer in self.encoder:
            x = layer(x)
        return x

    def forward(self, src, prev):
        enc = self.encode(src) if self.mt else None
        x = self.embed_tokens(self.embed, prev)
        for layer in self.decoder:
            x = layer(x, enc)
        return F.linear(x, self.embed.weight)  # output tied to the decoder's input embedding

    def step(self, tokens, enc, states, t):
        x = self.embed_tokens(self.embed, tokens, start=t)
        for layer, state in zip(self.decoder, states):
            x = layer.step(x, enc, state)
        return F.linear(x, self.embed.weight)[:, 0]  # (B, V)


def reorder_states(states, order):
    for state in states:
        for cache in state.values():
            for key in cache:
                cache[key] = cache[key].index_select(0, order)


def synthetic_batch(c, B, S, T, seed):
    g = torch.Generator().manual_seed(seed)
    V = c["V"]
    target = torch.randint(4, V, (B, T), generator=g)
    target[:, -1] = EOS
    prev = torch.cat([torch.full((B, 1), EOS), target[:, :-1]], dim=1)
    src = None
    if c["task"] == "mt":
        src = torch.randint(4, V, (B, S), generator=g)
        src[:, -1] = EOS
    return src, prev, target


def workloads():
    def pick(option, known):
        out = []
        for item in option.split(","):
            item = ALIASES.get(item, item)
            if item not in known:
                sys.exit(f"torch_reference: '{item}' is not one of {', '.join(known)}")
            if item not in out:
                out.append(item)
        return out
    for config in pick(ARGS.config, ["tiny", "small", "iwslt"]):
        for task in pick(ARGS.task, ["lm", "mt"]):
            for arch in pick(ARGS.arch, ["transformer", "lightweight", "dynamic"]):
                yield config, task, arch


def base_line(kind, config, task, arch):
    return {"bench": kind, "workload": f"{config}/{task}/{arch}", "config": config, "task": task,
            "arch": arch, "threads": ARGS.threads}


# ---- workloads

def bench_train():
    selected = list(workloads())
    if len(selected) > 1:
        # ru_maxrss only grows: each workload's peak memory needs a process of its own.
        import subprocess
        for config, task, arch in selected:
            subprocess.run([sys.executable, os.path.abspath(__file__), "train", "--threads", str(ARGS.threads),
                            "--warmup", str(ARGS.warmup), "--reps", str(ARGS.reps), "--config", config,
                            "--task", task, "--arch", arch], check=True)
        return
    for config, task, arch in selected:
        base_rss = rss_mb("VmRSS")
        c = workload_config(config, task, arch)
        torch.manual_seed(1)
        model = Model(c)
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=5e-4, betas=(0.9, 0.98), eps=1e-8)
        B, T, S = 128, 32, (32 if task == "mt" else 0)
        src, prev, target = synthetic_batch(c, B, S, T, 7)
        ntokens = target.numel()
        loss_value = [0.0]

        def step():
            logits = model(src, prev)
            loss = F.cross_entropy(logits.view(-1, c["V"]), target.view(-1), ignore_index=PAD,
                                   label_smoothing=0.1, reduction="sum") / ntokens
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            loss_value[0] = loss.item()

        warmup = ARGS.warmup if ARGS.warmup >= 0 else 2
        reps = ARGS.reps if ARGS.reps >= 0 else 5
        s = median_seconds(warmup, reps, step)
        peak = peak_rss_mb()
        line = base_line("train", config, task, arch)
        line.update({"batch": B, "source_len": S, "target_len": T, "target_tokens": ntokens,
                     "params": sum(p.numel() for p in model.parameters()),
                     "ms_per_step": s * 1e3, "tokens_per_s": ntokens / s, "loss": loss_value[0],
                     "peak_rss_mb": peak, "base_rss_mb": base_rss, "peak_delta_mb": peak - base_rss,
                     "warmup": warmup, "reps": reps, "load": load_average()})
        emit(line)


def bench_decode():
    warmup = ARGS.warmup if ARGS.warmup >= 0 else 1
    reps = ARGS.reps if ARGS.reps >= 0 else 5
    tokens_out = 50
    for config, task, arch in workloads():
        c = workload_config(config, task, arch)
        torch.manual_seed(1)
        model = Model(c)
        model.eval()
        V = c["V"]
        for B in [int(b) for b in ARGS.batches.split(",")]:
            src = synthetic_batch(c, B, 32, 1, 11)[0]

            def greedy():
                with torch.inference_mode():
                    enc = model.encode(src) if model.mt else None
                    states = [{} for _ in model.decoder]
                    tok = torch.full((B, 1), EOS, dtype=torch.long)
                    for t in range(tokens_out):
                        tok = model.step(tok, enc, states, t).argmax(dim=-1, keepdim=True)

            def beam_search(beam=4):
                # fairseq's search with </s> forbidden for 50 steps and forced at the 51st (the
                # same fixed amount of work as payless's beam_search with min_len = max_len = 50).
                with torch.inference_mode():
                    enc = model.encode(src).repeat_interleave(beam, dim=0)
                    states = [{} for _ in model.decoder]
                    tok = torch.full((B * beam, 1), EOS, dtype=torch.long)
                    scores = torch.zeros(B, beam)
                    base = (torch.arange(B) * beam).unsqueeze(1)
                    for t in range(tokens_out + 1):
                        lprobs = F.log_softmax(model.step(tok, enc, states, t), dim=-1)
                        lprobs[:, PAD] = float("-inf")
                        if t < tokens_out:
                            lprobs[:, EOS] = float("-inf")
                        else:
                            eos = lprobs[:, EOS].clone()
                            lprobs.fill_(float("-inf"))
                            lprobs[:, EOS] = eos
                        lprobs = lprobs.view(B, beam, V)
                        cand = lprobs[:, 0] if t == 0 else (scores.unsqueeze(2) + lprobs).view(B, beam * V)
                        top_scores, top_index = cand.topk(2 * beam, dim=1)
                        top_scores, top_index = top_scores[:, :beam], top_index[:, :beam]
                        if t == tokens_out:
                            break
                        scores = top_scores
                        order = (base + torch.div(top_index, V, rounding_mode="floor")).view(-1)
                        reorder_states(states, order)
                        tok = (top_index % V).view(-1, 1)

            runs = [("greedy", 1, tokens_out, greedy)]
            if model.mt:
                runs.append(("beam", 4, tokens_out + 1, beam_search))
            for mode, beam, steps, fn in runs:
                s = median_seconds(warmup, reps, fn)
                line = base_line("decode", config, task, arch)
                line.update({"mode": mode, "batch": B, "beam": beam, "tokens": tokens_out, "steps": steps,
                             "ms_total": s * 1e3, "ms_per_step": s * 1e3 / steps, "sentences_per_s": B / s,
                             "warmup": warmup, "reps": reps, "load": load_average()})
                emit(line)


def bench_layer():
    d, H, K, B = 512, 4, 31, 8
    torch.manual_seed(3)
    blocks = {
        "dynamic": nn.Sequential(nn.Linear(d, d), DynamicConv(d, K, H, K // 2, 0.0), nn.Linear(d, d)),
        "lightweight": nn.Sequential(nn.Linear(d, d), LightweightConv(d, K, H, K // 2, 0.0), nn.Linear(d, d)),
    }
    attention = Attention(d, H, 0.0)
    for T in [int(t) for t in ARGS.lengths.split(",") if t]:
        x = torch.empty(B, T, d).uniform_(-1, 1).requires_grad_()
        g = torch.empty(B, T, d).uniform_(-1, 1)
        for name in ("dynamic", "lightweight", "attention"):
            module = attention if name == "attention" else blocks[name]

            def run():
                y = module(x, x) if name == "attention" else module(x)
                y.backward(g)
                module.zero_grad(set_to_none=True)
                x.grad = None

            warmup = ARGS.warmup if ARGS.warmup >= 0 else 1
            reps = ARGS.reps if ARGS.reps >= 0 else (3 if T >= 1024 else 5)
            s = median_seconds(warmup, reps, run)
            emit({"bench": "layer", "block": name, "T": T, "batch": B, "d": d, "heads": H, "kernel": K,
                  "ms": s * 1e3, "threads": ARGS.threads, "warmup": warmup, "reps": reps,
                  "load": load_average()})


def bench_ops():
    # Forward rates of the kernels that payless's `bench ops` times, at the same shapes.
    g = torch.Generator().manual_seed(1)
    shapes = [("x·Wᵀ 4096x512x512", 4096, 512, 512, False, True),
              ("x·Wᵀ 4096x512x2048", 4096, 512, 2048, False, True),
              ("x·Wᵀ 4096x512x10000", 4096, 512, 10000, False, True),
              ("dY·W 4096x2048x512", 4096, 2048, 512, False, False),
              ("dYᵀ·X 2048x4096x512", 2048, 4096, 512, True, False)]
    with torch.inference_mode():
        for what, m, k, n, ta, tb in shapes:
            a = torch.rand(k, m, generator=g) if ta else torch.rand(m, k, generator=g)
            b = torch.rand(n, k, generator=g) if tb else torch.rand(k, n, generator=g)
            s = median_seconds(1, 5, lambda: torch.mm(a.t() if ta else a, b.t() if tb else b))
            emit({"bench": "ops", "op": "matmul", "what": what, "ms": s * 1e3,
                  "gflops": 2 * m * n * k / s / 1e9, "threads": ARGS.threads})
        x = torch.rand(4096, 10000, generator=g) * 8 - 4
        targets = torch.arange(4096) * 7919 % 10000
        for op, what, fn in [
            ("softmax", "softmax 4096x10000 (fwd)", lambda: F.softmax(x, dim=-1)),
            ("cross_entropy", "cross-entropy 4096x10000 (fwd)",
             lambda: F.cross_entropy(x, targets, label_smoothing=0.1, reduction="sum")),
        ]:
            s = median_seconds(1, 5, fn)
            emit({"bench": "ops", "op": op, "what": what, "ms": s * 1e3, "threads": ARGS.threads})
        h = torch.rand(4096, 512, generator=g)
        ln = nn.LayerNorm(512)
        s = median_seconds(1, 5, lambda: ln(h))
        emit({"bench": "ops", "op": "layer_norm", "what": "layer norm 4096x512 (fwd)", "ms": s * 1e3,
              "threads": ARGS.threads})
        xc = torch.rand(8, 1024, 512, generator=g)
        for op, what, conv in [("dynamic_conv", "dynamic conv 8x1024x512 K31 (fwd)", DynamicConv(512, 31, 4, 15, 0.0)),
                               ("lightweight_conv", "lightweight conv 8x1024x512 K31 (fwd)",
                                LightweightConv(512, 31, 4, 15, 0.0))]:
            conv.eval()
            s = median_seconds(1, 5, lambda: conv(xc))
            emit({"bench": "ops", "op": op, "what": what + " incl. kernel generator" * (op == "dynamic_conv"),
                  "ms": s * 1e3, "threads": ARGS.threads})


if __name__ == "__main__":
    {"train": bench_train, "decode": bench_decode, "layer": bench_layer, "ops": bench_ops}[ARGS.kind]()
