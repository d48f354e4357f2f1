"""Sealcheck core: verify and restore envelope-encrypted database backups.

This package never imports Qt; the GUI lives in ``sealcheck.gui``.
"""

__version__ = "0.1.0"
