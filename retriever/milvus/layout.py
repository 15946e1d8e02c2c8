"""How a generation's collections are laid out: what the writer (`publish`) and the readers
(`index`, `store`) must agree on."""

from __future__ import annotations

LAYOUT = 4  # of the collections, beside the manifest's VERSION; 2: token vectors as pieces per part; 3: in int8;
# 4: the header (format, checksum) in a row of the meta collection: a 2.3 server forgets collection properties on restart
HEADER_ID = -1  # the header row's id in the meta collection: apart from the blob rows, numbered from 0
TOKEN_PIECE = 45_000  # bytes of int8 token vectors per VARCHAR row: 60 000 characters in base64
PIECES_PER_PART = 64  # a part's pieces are rows part·64 … part·64 + 63: room for 2.8 MB, 1 400 tokens at 1 024d
BATCH = 2048  # rows per insert or query call; Milvus caps a call's message at 64 MiB and a query at 16 384 rows
MAX_LIMIT = 16_384  # Milvus's cap on a search's k and a query's rows
