"""Train a benchmark model (bench/model/cachekit_bench_flux*.safetensors) from scratch.

A small Flux-architecture transformer (diffusers' FluxTransformer2DModel; see benchmark_model.py)
learns rectified flow on procedural class-conditional images, with 10% of prompts dropped for
classifier-free guidance. Fixed seeds and a fixed thread count make the run reproducible on one
machine (CPU float arithmetic may differ in the last bits across CPUs and torch builds).
The checkpoint is saved in fp16 in ComfyUI's Flux key layout (ComfyUI's own converter).
Usage: python3 bench/train_model.py [--model deep|small] [--steps N] [--batch 16]
  --model small: the first benchmark model, 9 blocks, 3000 steps (about 8 minutes on 2 idle CPU cores);
  --model deep (default): 24 blocks, 4000 steps (about 25 minutes on 2 shared CPU cores; see results.md).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.append(str(HERE.parent / "tests"))  # last: ComfyUI's namespace package `comfy` must win over tests/comfy

import benchmark_model as bm  # noqa: E402
from harness.comfy_env import boot_comfy  # noqa: E402


def pack(latents: torch.Tensor) -> torch.Tensor:
    """[B, 16, H, W] -> diffusers' packed 2x2 patch tokens [B, H/2 * W/2, 64]."""
    b, c, h, w = latents.shape
    return latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), c * 4)


def image_ids(h: int, w: int) -> torch.Tensor:
    """diffusers' img_ids for an H x W latent: (0, row, col) per patch."""
    ids = torch.zeros(h // 2, w // 2, 3)
    ids[..., 1] = torch.arange(h // 2)[:, None]
    ids[..., 2] = torch.arange(w // 2)[None, :]
    return ids.reshape(-1, 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(bm.MODELS), default=bm.DEFAULT_MODEL)
    parser.add_argument("--steps", type=int, default=None, help="default: the model spec's train_steps")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="default: the model spec's checkpoint")
    args = parser.parse_args()
    spec = bm.MODELS[args.model]
    args.steps = args.steps or spec.train_steps
    args.out = args.out or spec.checkpoint
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # denormal weights/gradients made CPU training up to 10x slower
    torch.manual_seed(0)
    boot_comfy()  # for ComfyUI's key converter

    model = bm.make_diffusers_model(spec).train()
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    tokens, pooled = bm.class_prompts(spec)
    data_gen, noise_gen = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    img_ids, txt_ids = image_ids(bm.LATENT_SIZE, bm.LATENT_SIZE), torch.zeros(spec.tokens, 3)
    started, running = time.time(), None
    for step in range(1, args.steps + 1):
        labels = torch.randint(0, len(bm.CLASSES), (args.batch,), generator=data_gen)
        x0 = bm.image_to_latent(bm.procedural_images(labels, data_gen))
        noise = torch.randn(x0.shape, generator=noise_gen)
        t = torch.sigmoid(torch.randn(args.batch, generator=noise_gen))  # logit-normal, as rectified-flow models train
        keep = (torch.rand(args.batch, generator=noise_gen) > 0.1).float()
        context = tokens[labels] * keep[:, None, None]
        vector = pooled[labels] * keep[:, None]
        xt = (1 - t[:, None, None, None]) * x0 + t[:, None, None, None] * noise
        velocity = model(hidden_states=pack(xt), encoder_hidden_states=context, pooled_projections=vector, timestep=t,
                         img_ids=img_ids, txt_ids=txt_ids, return_dict=False)[0]
        loss = torch.nn.functional.mse_loss(velocity, pack(noise - x0))
        warmup = min(1.0, step / 100)
        decay = 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for group in optimizer.param_groups:
            group["lr"] = args.lr * warmup * (0.1 + 0.9 * decay)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        with torch.no_grad():
            beta = min(0.999, step / (step + 10))
            for k, v in model.state_dict().items():
                ema[k].mul_(beta).add_(v.detach(), alpha=1 - beta)
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % 50 == 0 or step == 1:
            print(f"step {step:5d}  loss {running:.4f}  {time.time() - started:6.0f} s", flush=True)

    from safetensors.torch import save_file

    comfy_state = bm.to_comfy_state_dict(ema)
    state = {k: comfy_state[k].to(torch.float16).contiguous() for k in sorted(comfy_state)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(args.out), metadata={"made_by": f"bench/train_model.py --model {args.model} --steps {args.steps} "
                                                         f"({spec.describe()}, ComfyUI Flux key layout)"})
    print(f"saved {args.out} ({args.out.stat().st_size / 2**20:.1f} MiB) after {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
