#!/usr/bin/env bash
# Installs retriever into ./.venv. torch goes first and pinned: `torch==2.13.0` is the local CPU build,
# any other spec would pull several GB of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/pip install --quiet torch==2.13.0
.venv/bin/pip install --quiet -e '.[test,milvus,documents,ray]'
