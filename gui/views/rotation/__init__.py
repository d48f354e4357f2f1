"""The key-rotation wizard (issue 13): scope → old keys → new key → plan → run → result,
driving core's rotation (plan, journaled run, resume, report) on the one worker type."""

from .wizard import Page, RotationWizard, offer_resume

__all__ = ["Page", "RotationWizard", "offer_resume"]
