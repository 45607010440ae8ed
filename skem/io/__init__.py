"""Readers and writers for the field's file formats. They return arrays and metadata; no estimator logic."""

__all__: list[str] = []
