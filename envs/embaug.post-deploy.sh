#!/usr/bin/env bash
# Run by snakemake once, inside the new environment, right after `--sdm conda` created it
# from embaug.yaml, in the workflow's working directory (the repository root when snakemake
# is started there). Installs this checkout of the embaug package into the environment.
# From another working directory, set EMBAUG_REPO=/path/to/this/repository.
set -euo pipefail
repo="${EMBAUG_REPO:-$PWD}"
if ! grep -qs '^name = "embaug"' "$repo/pyproject.toml"; then
    echo "embaug.post-deploy.sh: '$repo' is not the embaug repository (no pyproject.toml naming" \
         "embaug); start snakemake in the repository root or set EMBAUG_REPO=/path/to/embaug" >&2
    exit 1
fi
python -m pip install --no-deps -e "$repo"
