"""Thin Dagster assets: read inputs, call the domain code, write outputs, attach metadata."""
