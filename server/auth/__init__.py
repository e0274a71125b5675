"""Accounts and tokens: registration, login, refresh rotation, the auth middleware."""
