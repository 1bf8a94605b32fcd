"""The one transaction state machine every store shares.

``store.transaction()`` returns a :class:`Transaction`; what it does is the
same for every adapter:

- The first one a thread opens starts the unit of work (``begin``); one
  opened while the thread already has one joins it as a savepoint, so that
  its own exception undoes only its own writes.
- ``readonly=True`` makes writes raise ``RuntimeError``; a write transaction
  inside a read-only one is refused (it could not write either).
- ``single_read=True`` is read-only and tells ``begin`` that the block makes
  one repository read (see :meth:`usercore.ports.Store.transaction`); nested
  in an open unit of work it is an ordinary read-only savepoint, and nothing
  can be nested in it (``RuntimeError``).
- When the block ends, the outermost transaction commits or rolls back
  (``finish``); nested ones release or roll back to their savepoint.
- The unit of work checks ``depth`` on every call, so using it after its
  block has ended raises ``RuntimeError``.

An adapter supplies the few steps that differ as a :class:`TransactionHooks`:
how to start, savepoint, commit and roll back in its database.
"""

from __future__ import annotations

from types import TracebackType
from typing import Generic, TypeVar

__all__ = ["Transaction", "TransactionHooks", "UnitOfWorkState"]


class UnitOfWorkState:
    """How deep a unit of work is nested and whether it may write."""

    def __init__(self) -> None:
        self.depth = 0
        self.readonly = False
        self.single_read = False

    def check_reading(self) -> None:
        if self.depth == 0:
            raise RuntimeError("this unit of work is used outside its transaction")

    def check_writing(self) -> None:
        self.check_reading()
        if self.readonly:
            raise RuntimeError("cannot write inside a read-only transaction")


S = TypeVar("S", bound=UnitOfWorkState)


class TransactionHooks(Generic[S]):
    """What an adapter does at each step; :class:`Transaction` decides when."""

    def current(self) -> S | None:
        """This thread's open unit of work, or ``None``."""
        raise NotImplementedError

    def begin(self, readonly: bool, single_read: bool = False) -> S:
        """Start a top-level transaction and return its unit of work (at depth 0).

        ``single_read``: the block makes one repository read, and the adapter
        may run its statement without a transaction around it.  Raises
        ``RuntimeError`` when the store is closed.
        """
        raise NotImplementedError

    def finish(self, uow: S, exc: BaseException | None) -> None:
        """Commit (``exc`` is ``None``) or roll back the top-level transaction."""
        raise NotImplementedError

    def savepoint(self, uow: S, readonly: bool) -> object | None:
        """Open a savepoint for a nested transaction; returns what
        :meth:`end_savepoint` needs, or ``None`` when none is needed."""
        raise NotImplementedError

    def end_savepoint(self, uow: S, savepoint: object, failed: bool) -> None:
        """Release the savepoint, rolling back to it first when ``failed``.

        ``uow.depth`` is back to what it was when :meth:`savepoint` ran, so a
        name built from it names the same savepoint."""
        raise NotImplementedError


class Transaction(Generic[S]):
    """The context manager ``store.transaction()`` returns, for every store."""

    __slots__ = ("_hooks", "_previous_readonly", "_readonly", "_savepoint", "_single_read", "_uow")

    def __init__(self, hooks: TransactionHooks[S], readonly: bool, single_read: bool = False):
        self._hooks = hooks
        self._readonly = readonly or single_read
        self._single_read = single_read

    def __enter__(self) -> S:
        hooks = self._hooks
        uow = hooks.current()
        if uow is None:
            uow = hooks.begin(self._readonly, self._single_read)
            self._savepoint: object | None = None
            self._previous_readonly = False
            uow.readonly = self._readonly
            uow.single_read = self._single_read
        else:
            if uow.single_read:
                # Its one statement may run outside any transaction: nothing to nest in.
                raise RuntimeError("cannot open a transaction inside a single-read one")
            if uow.readonly and not self._readonly:
                raise RuntimeError("cannot open a write transaction inside a read-only one")
            self._savepoint = hooks.savepoint(uow, self._readonly)
            self._previous_readonly = uow.readonly
            uow.readonly = uow.readonly or self._readonly
        uow.depth += 1
        self._uow = uow
        return uow

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        uow = self._uow
        uow.depth -= 1
        uow.readonly = self._previous_readonly
        if uow.depth > 0:
            if self._savepoint is not None:
                self._hooks.end_savepoint(uow, self._savepoint, exc is not None)
            return
        self._hooks.finish(uow, exc)
