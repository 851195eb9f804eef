"""Small checks of plain argument values, shared by every layer (one place instead of a copy per caller).

Each check raises the minibert error class the caller names (``ConfigError`` for a config field,
``InputError`` for a function argument, ...) with the argument's name and the offending value, and
returns the value normalised (a NumPy integer comes back as ``int``).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Optional

from minibert.errors import InputError, MinibertError


def check_int(name: str, value: Any, *, minimum: Optional[int] = None, maximum: Optional[int] = None,
              error: type[MinibertError] = InputError) -> int:
    """``value`` as an ``int`` in ``[minimum, maximum]``; ``bool`` is refused although Python calls it an int."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise error(f"{name} must be an integer{_range_text(minimum, maximum)}, got {value!r}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise error(f"{name} must be an integer{_range_text(minimum, maximum)}, got {value!r}")
    return value


def check_positive_int(name: str, value: Any, *, error: type[MinibertError] = InputError) -> int:
    """``value`` as an ``int`` >= 1 (the "positive int, not bool" check)."""
    return check_int(name, value, minimum=1, error=error)


def check_number(name: str, value: Any, *, minimum: Optional[float] = None, maximum: Optional[float] = None,
                 exclusive_minimum: bool = False, error: type[MinibertError] = InputError) -> float:
    """``value`` as a finite ``float`` in the range; ``bool``, NaN and infinities are refused."""
    bounds = _range_text(minimum, maximum, exclusive_minimum)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise error(f"{name} must be a finite number{bounds}, got {value!r}")
    value = float(value)
    too_low = minimum is not None and (value <= minimum if exclusive_minimum else value < minimum)
    if not math.isfinite(value) or too_low or (maximum is not None and value > maximum):
        raise error(f"{name} must be a finite number{bounds}, got {value!r}")
    return value


def _range_text(minimum: Optional[float], maximum: Optional[float], exclusive_minimum: bool = False) -> str:
    low = "" if minimum is None else f"{'>' if exclusive_minimum else '>='} {minimum}"
    high = "" if maximum is None else f"<= {maximum}"
    if minimum == 1 and maximum is None and not exclusive_minimum:
        return " >= 1 (a positive integer)"
    return "".join((" ", low, " and " if low and high else "", high)) if low or high else ""
