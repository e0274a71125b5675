"""Direct uploads: one-time upload URLs for callers without credentials."""
