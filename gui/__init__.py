"""Sealcheck desktop application (PySide6). Imports Qt; core never imports this."""
