"""Ingest: turn files into documents, chunks, vectors and graph facts."""
