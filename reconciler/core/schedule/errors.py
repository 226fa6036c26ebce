"""The one exception type of the schedule package."""

from __future__ import annotations


class ScheduleError(ValueError):
    """A bad schedule expression or time zone.

    ``str(err)`` is a user-facing message such as ``'hour field: 24 is out of range 0-23'``.
    ``column`` is the 0-based offset, inside the expression as given, of the offending field
    when it is known, else ``None`` (a UI can put a caret under it).
    """

    column: int | None

    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message)
        self.column = column

    def __reduce__(self) -> tuple[type[ScheduleError], tuple[str, int | None]]:
        # Keep ``column`` across pickling (e.g. errors sent between worker processes).
        return (type(self), (str(self), self.column))
