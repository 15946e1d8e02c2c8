#!/usr/bin/env bash
# Installs retriever into ./.venv. torch comes first, with pip: `torch==2.13.0` is the local CPU build, which only
# pip sees; any other spec would pull several GB of CUDA packages. The other ~130 packages come with uv, which fetches
# and unpacks wheels in parallel: 30 s against pip's 68 s for the same versions (uv from an empty cache, pip with
# its own warm). torch stays pinned through it. A network that uv cannot use (a mirror set only in pip's config)
# falls back to pip. Neither writes .pyc files up front: each module is compiled when first imported.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/pip install --quiet --no-compile torch==2.13.0 uv
extras='.[test,milvus,documents,ray]'
if ! .venv/bin/uv pip install --quiet --no-progress --python .venv/bin/python --constraint <(echo torch==2.13.0) \
    -e "$extras"; then
    echo "note: uv could not install; installing with pip" >&2
    .venv/bin/pip install --quiet --no-compile torch==2.13.0 -e "$extras"
fi
