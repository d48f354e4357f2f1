"""Widgets only: the main window, its panes, dialogs and wizards."""
