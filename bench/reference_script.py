"""The hand-written reference: load a SentenceTransformer and a saved IndexFlatIP, encode, search, print.

Run as `python bench/reference_script.py MODEL_DIR FAISS_FILE QUESTION`; the bench times it cold, as a whole
process, beside `retriever ask`.
"""

import sys

import faiss
from sentence_transformers import SentenceTransformer

model_dir, index_file, question = sys.argv[1:4]
model = SentenceTransformer(model_dir, device="cpu")
index = faiss.read_index(index_file)
scores, rows = index.search(model.encode(["query: " + question], normalize_embeddings=True), 5)
print(list(zip(rows[0].tolist(), scores[0].tolist())))
