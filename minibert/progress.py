"""Progress bars when tqdm is installed (the ``extras``), a silent stand-in when it is not.

Training and encoding must work on the four run-time dependencies alone; tqdm only makes long work
visible, so its absence costs the bar, never the run.
"""

from __future__ import annotations

from typing import Any


class _NoBar:
    """The slice of tqdm's interface minibert uses, doing nothing."""

    def __init__(self, iterable: Any = None, **_: Any):
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable)

    def __len__(self) -> int:
        return len(self.iterable)

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def set_description(self, *args: Any, **kwargs: Any) -> None:
        pass

    def write(self, text: str) -> None:
        print(text)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


def progress_bar(iterable: Any = None, **kwargs: Any):
    """``tqdm.auto.tqdm(iterable, **kwargs)`` if tqdm is installed, else a bar that shows nothing."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _NoBar(iterable, **kwargs)
    return tqdm(iterable, **kwargs)
