"""The Milvus store: one set of collections per generation, shared by servers on many machines."""
