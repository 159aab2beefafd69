"""Sandbox backends: one file per database behind the ``Backend`` protocol."""
