"""Presets: named, saved operation sets per user, for uploads and batches."""
