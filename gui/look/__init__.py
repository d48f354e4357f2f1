"""Palette, icons and sizes."""
