"""Expiry and cleanup: the sweep that keeps storage from growing without bound.

`sweep.run_sweep` does one pass (also `python run.py cleanup`); `task.CleanupTask`
runs it every few minutes from the app's `cleanup_ctx`.
"""
