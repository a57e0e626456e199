//! Task data: JSONL / Parquet records with a field mapping (being written).
