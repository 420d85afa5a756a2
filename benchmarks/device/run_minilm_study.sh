#!/bin/bash
# On the GPU device machine, from the repo root, after prepare_minilm_study.sh here:
# the MiniLM study with snakemake (Table 2: kNN euclidean / cosine and linear, last layer), then the
# throughput benchmark. Everything that comes back is under $OUT (at most 8 files).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
T0=$(date +%s)
stamp() { echo "$1 $(( $(date +%s) - T0 ))s $(date -u +%H:%M:%S)" | tee -a "$OUT/timing.txt"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || exit
# embaug from the carried snapshot of src/, without pip: PYTHONPATH, dist metadata (train.library_versions asks
# importlib.metadata for embaug's version), and an `embaug` launcher on PATH for the rules' shell commands
export PYTHONPATH=/tmp/site:$PWD/.carry/snap/src
mkdir -p /tmp/site/embaug-0.1.0.dist-info /tmp/bin
printf 'Metadata-Version: 2.1\nName: embaug\nVersion: 0.1.0\n' > /tmp/site/embaug-0.1.0.dist-info/METADATA
printf '#!/bin/sh\nexec python3 -m embaug.cli "$@"\n' > /tmp/bin/embaug && chmod +x /tmp/bin/embaug
export PATH=/tmp/bin:$PATH HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
stamp setup_done
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc; uptime; python3 -V
  python3 -c 'import torch, transformers, sentence_transformers, snakemake, sklearn, pandas as pd
print(torch.__version__, transformers.__version__, sentence_transformers.__version__, snakemake.__version__,
      sklearn.__version__, pd.__version__, torch.cuda.is_available())'
  cat .carry/snap/SNAPSHOT.txt; } > "$OUT/env.txt" 2>&1
W=/tmp/study; mkdir -p $W; ln -sfn "$PWD/.carry" $W/.carry   # config paths are relative to the workdir
TARGETS=$(for t in table2_knn table2_knn_cosine table2_linear; do echo results/shared_minilm/tables/$t.md results/shared_minilm/tables/$t.csv; done)
stamp snakemake_start
timeout 400 python3 -m snakemake $TARGETS -s "$PWD/.carry/snap/Snakefile" -d $W --configfile .carry/config_gpu.yaml \
  --cores 16 --resources gpu=1 -p --rerun-incomplete > "$OUT/snakemake.log" 2>&1
echo "snakemake rc=$?" | tee -a "$OUT/timing.txt"
stamp snakemake_end
(cd $W && tar czf "$OUT/study.tar.gz" results/shared_minilm/tables results/shared_minilm/scores results/shared_minilm/benchmarks \
  results/shared_minilm/models/*/train_log.csv results/shared_minilm/models/*/run.json logs/shared_minilm .snakemake/log 2>/dev/null)
cat $W/results/shared_minilm/tables/*.md
stamp bench_start
timeout $(( 575 - ($(date +%s) - T0) )) python3 benchmarks/throughput.py --device cuda --docs 4170 --steps 40 \
  --warmup-steps 5 --minilm .carry/minilm --data .carry/data/iclr.parquet \
  --out "$OUT/throughput_gpu_h100.csv" > "$OUT/bench.log" 2>&1
echo "bench rc=$?" | tee -a "$OUT/timing.txt"
stamp bench_end
tail -12 "$OUT/bench.log"
