"""The image library: images are `videos` rows of kind `image` (see uploads/images.py)."""
