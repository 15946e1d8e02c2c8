#!/usr/bin/env bash
# Installs retriever into ./.venv. torch is pinned: `torch==2.13.0` is the local CPU build, any other spec would
# pull several GB of CUDA packages. One pip call resolves everything once, and --no-compile skips writing .pyc
# files for the ~20 000 modules of torch, ray and the rest: each module is compiled when first imported instead.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/pip install --quiet --no-compile torch==2.13.0 -e '.[test,milvus,documents,ray]'
