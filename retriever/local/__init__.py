"""The default store: generations on local disk, loaded with FAISS, each checked by one question before it goes live."""
