"""What the window shows and remembers: settings, the key session, results
and the Qt item models."""
