"""Webhooks: users register URLs that get a signed JSON POST when their jobs end."""
