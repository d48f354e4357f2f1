"""The GUI's words are keyed by core's error classes (issue 11): a new error class in
core without words here fails this test, and a stored report's kind finds its class."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import sealcheck.core
from sealcheck.core.errors import BackupFailed, ExitCode, KeyNotUsable, SealcheckError
from sealcheck.core.records.report import ErrorInfo
from sealcheck.core.restoretest.errors import ArchiveRestoreFailed
from sealcheck.gui import errortext
from sealcheck.gui.errortext import describe, words_for


def core_error_classes() -> list[type[SealcheckError]]:
    """Every subclass of the core base error, found by importing every core module."""
    found: dict[str, type[SealcheckError]] = {}
    for info in pkgutil.walk_packages(sealcheck.core.__path__, "sealcheck.core."):
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if (
                inspect.isclass(obj)
                and issubclass(obj, SealcheckError)
                and obj.__module__ == module.__name__
            ):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return sorted(found.values(), key=lambda c: c.__name__)


CLASSES = core_error_classes()


def test_the_walk_finds_errors_beyond_core_errors() -> None:
    modules = {c.__module__ for c in CLASSES}
    assert "sealcheck.core.errors" in modules
    assert "sealcheck.core.restoretest.errors" in modules
    assert len(CLASSES) > 40


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_core_error_class_has_its_own_words(cls: type[SealcheckError]) -> None:
    assert cls in errortext._WORDS, f"{cls.__module__}.{cls.__name__} has no words in errortext"
    headline, advice = errortext._WORDS[cls]
    assert headline.strip() and advice.strip()


def test_class_names_are_unique_so_a_stored_kind_finds_its_class() -> None:
    names = [c.__name__ for c in CLASSES]
    assert len(names) == len(set(names))


def test_the_table_is_keyed_by_classes_only() -> None:
    assert all(inspect.isclass(k) and issubclass(k, SealcheckError) for k in errortext._WORDS)


def test_a_stored_kind_reads_as_the_raised_error() -> None:
    exc = ArchiveRestoreFailed("pg_restore: error: could not read", obj="db.dump")
    stored = ErrorInfo.from_exc(exc)
    assert describe(stored).headline == describe(exc).headline == words_for(ArchiveRestoreFailed)[0]
    assert describe(KeyNotUsable("no private part")).headline == words_for(KeyNotUsable)[0]


def test_an_unknown_stored_kind_falls_back_by_exit_code() -> None:
    bad = ErrorInfo("FromANewerVersion", None, "x", int(ExitCode.BACKUP_FAILED))
    assert describe(bad).headline == words_for(BackupFailed)[0]
    other = ErrorInfo("FromANewerVersion", None, "x", int(ExitCode.USAGE))
    assert describe(other).headline == words_for(SealcheckError)[0]
