#!/bin/bash
# The GPU check of issue 14, for a CUDA machine, run from the repo root (no carried files needed):
# exact kNN (k = 10, Euclidean + cosine) of all 13 layers x 768 at 733k documents, the paper's arXiv size,
# on synthetic stored embeddings (benchmarks/paper_scale.py). Target: the knn stage under 2 minutes.
# Then the same search against scikit-learn on one layer and 1,024 queries (the accuracies must agree).
#
#   on the device tool: run(command="bash benchmarks/device/run_knn_gpu.sh", timeout_s=540)
#
# Device time: about 2-3 min to write the 14.6 GB float16 store (numpy, one core), then the knn stage,
# then about 1 min for the scikit-learn check. Everything that comes back is under $OUT.
set -u
OUT=${OUT:-benchmarks/runs}
W=${W:-/tmp/paper_scale}
mkdir -p "$OUT"
export PYTHONPATH=$PWD/src:${PYTHONPATH:-} PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc; python3 -V
  python3 -c 'import torch, sklearn; print(torch.__version__, sklearn.__version__, torch.cuda.is_available())'
} > "$OUT/env_knn_gpu.txt" 2>&1
python3 benchmarks/paper_scale.py --sizes 733000 --stages knn --device cuda --threads "$(nproc)" \
  --workdir "$W" --out "$OUT/paper_scale_gpu.csv" 2>&1 | grep -v Warning | tee "$OUT/paper_scale_gpu.log"
python3 benchmarks/paper_scale.py --sizes 733000 --stages knn sklearn_knn --device cuda --threads "$(nproc)" \
  --knn-layers 1 --knn-queries 1024 --workdir "$W" --out "$OUT/paper_scale_gpu_check.csv" 2>&1 \
  | grep -v Warning | tee "$OUT/paper_scale_gpu_check.log"
