"""Listing, reading, deleting and playing back a user's videos."""
