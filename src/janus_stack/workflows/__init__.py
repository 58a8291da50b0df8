"""Workflows: specs as data, a durable engine, runs in the ledger."""
