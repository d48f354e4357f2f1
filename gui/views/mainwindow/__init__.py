"""The main window: the window and its panes (window), its actions, toolbar and menus
(actions), and the Qt-free decisions behind the job actions (compose: a selection to
job specs, drift baselines)."""

from .window import MainWindow

__all__ = ["MainWindow"]
