"""Small checks shared by every layer (one place instead of a copy per caller): plain argument
values, whether a request fits in the machine's memory, and reading a JSON file.

Each check raises the minibert error class the caller names (``ConfigError`` for a config field,
``InputError`` for a function argument, ...) with the argument's name and the offending value, and
returns the value normalised (a NumPy integer comes back as ``int``).
"""

from __future__ import annotations

import json
import math
import numbers
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from minibert.errors import CheckpointError, InputError, MinibertError

if TYPE_CHECKING:
    import torch


def check_int(name: str, value: Any, *, minimum: Optional[int] = None, maximum: Optional[int] = None,
              error: type[MinibertError] = InputError, integral_float: bool = False) -> int:
    """``value`` as an ``int`` in ``[minimum, maximum]``; ``bool`` is refused although Python calls it an int.

    ``integral_float=True`` also takes a float with no fractional part (``16.0``), as JSON files
    written by other tools sometimes hold.
    """
    if integral_float and isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise error(f"{name} must be an integer{_range_text(minimum, maximum)}, got {value!r}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise error(f"{name} must be an integer{_range_text(minimum, maximum)}, got {value!r}")
    return value


def check_positive_int(name: str, value: Any, *, error: type[MinibertError] = InputError) -> int:
    """``value`` as an ``int`` >= 1 (the "positive int, not bool" check)."""
    return check_int(name, value, minimum=1, error=error)


def check_bool(name: str, value: Any, *, error: type[MinibertError] = InputError) -> bool:
    """``value`` as a ``bool``; the strings "true"/"false" (any case), which hand-written JSON files
    hold, are read as what they say, never as "a non-empty string is true"."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise error(f"{name} must be true or false, got {type(value).__name__}: {value!r:.80}")


def check_number(name: str, value: Any, *, minimum: Optional[float] = None, maximum: Optional[float] = None,
                 exclusive_minimum: bool = False, exclusive_maximum: bool = False,
                 error: type[MinibertError] = InputError) -> float:
    """``value`` as a finite ``float`` in the range; ``bool``, NaN and infinities are refused."""
    bounds = _range_text(minimum, maximum, exclusive_minimum, exclusive_maximum)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise error(f"{name} must be a finite number{bounds}, got {value!r}")
    value = float(value)
    too_low = minimum is not None and (value <= minimum if exclusive_minimum else value < minimum)
    too_high = maximum is not None and (value >= maximum if exclusive_maximum else value > maximum)
    if not math.isfinite(value) or too_low or too_high:
        raise error(f"{name} must be a finite number{bounds}, got {value!r}")
    return value


def check_device(value: Any, *, name: str = "--device", error: type[MinibertError] = InputError) -> "torch.device":
    """``value`` (``"cpu"``, ``"cuda:1"``, ``"mps"``, a ``torch.device``) as a device this machine has.

    Refused with ``error`` naming ``name``: a string torch cannot parse, a device kind minibert does
    not run on, CUDA or MPS where this torch build or machine has none, a CUDA index past the last GPU.
    """
    import torch  # here, so that the value checks above stay importable without torch's start-up cost

    try:
        device = torch.device(value)
    except (RuntimeError, TypeError, ValueError):
        raise error(f"{name} must name a device such as cpu, cuda, cuda:1 or mps, got {value!r}") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise error(f"{name}={value!r}, but CUDA is not available here (no GPU, or a CPU-only torch "
                        f"build {torch.__version__}); use --device cpu")
        if device.index is not None and device.index >= count:
            raise error(f"{name}={value!r}, but this machine has {count} CUDA device(s): cuda:0..cuda:{count - 1}")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise error(f"{name}={value!r}, but Apple's MPS backend is not available here; use --device cpu")
    elif device.type != "cpu":
        raise error(f"{name}={value!r}: minibert runs on cpu, cuda or mps, not on {device.type!r}")
    return device


# ------------------------------------------------------------------------------------------- memory
def physical_memory_bytes() -> int:
    """This machine's RAM (physical pages times page size); 0 where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def available_memory() -> int:
    """Bytes this process could still get: Linux's MemAvailable, else all physical memory, else 1 TiB."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return physical_memory_bytes() or 1 << 40


def check_fits_in_memory(what: str, n_bytes: float, *, error: type[MinibertError] = InputError) -> None:
    """Refuse, before allocating, a request that needs more bytes than the machine has.

    ``what`` names the field(s) responsible, e.g. ``"config.vocab_size=10000000000"``.
    """
    available = physical_memory_bytes()
    if available and n_bytes > available:
        raise error(f"{what} would need about {format_bytes(n_bytes)}, more than this machine's "
                    f"{format_bytes(available)} of memory")


def format_bytes(n_bytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n_bytes < 1000 or unit == "PB":
            return f"{n_bytes:.3g} {unit}"
        n_bytes /= 1000
    raise AssertionError("unreachable")


# ------------------------------------------------------------------------------------------- JSON
def read_json(path: Path, *, error: type[MinibertError] = CheckpointError) -> Any:
    """A JSON file's value; every way the file can be unreadable becomes ``error`` naming the file."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"file not found: {path}") from None
    except ValueError as exc:  # bad JSON, bad UTF-8, or a number past Python's int-digits limit
        raise error(f"cannot read {path}: not valid JSON ({exc})") from None
    except RecursionError:
        raise error(f"cannot read {path}: it nests JSON arrays/objects too deeply") from None
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror or exc}") from None


def _range_text(minimum: Optional[float], maximum: Optional[float], exclusive_minimum: bool = False,
                exclusive_maximum: bool = False) -> str:
    low = "" if minimum is None else f"{'>' if exclusive_minimum else '>='} {minimum}"
    high = "" if maximum is None else f"{'<' if exclusive_maximum else '<='} {maximum}"
    if minimum == 1 and maximum is None and not exclusive_minimum:
        return " >= 1 (a positive integer)"
    return "".join((" ", low, " and " if low and high else "", high)) if low or high else ""
