"""Account recovery: email verification, password reset and password change."""
