"""``sealcheck demo``: the Qt-free sample maker and headless run (samples) and
the demo's window (window)."""
