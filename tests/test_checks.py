"""minibert.checks: the shared value checks every layer uses."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from minibert.checks import check_int, check_number, check_positive_int, read_json
from minibert.errors import CheckpointError, ConfigError, InputError


@pytest.mark.parametrize("value", [0, -3, True, False, 1.0, "2", None, [1]])
def test_positive_int_refuses_non_ints_bools_and_zero(value):
    with pytest.raises(ConfigError, match=r"config\.width must be an integer >= 1"):
        check_positive_int("config.width", value, error=ConfigError)


def test_positive_int_accepts_numpy_ints_and_returns_a_python_int():
    value = check_positive_int("n", np.int64(3))
    assert value == 3 and type(value) is int


@given(st.integers(-10**30, 10**30), st.integers(-5, 5), st.integers(5, 20))
@settings(max_examples=60, deadline=None)
def test_int_range_is_inclusive(value, low, high):
    if low <= value <= high:
        assert check_int("x", value, minimum=low, maximum=high) == value
    else:
        with pytest.raises(InputError, match=r"x must be an integer >= -?\d+ and <= \d+"):
            check_int("x", value, minimum=low, maximum=high)


@pytest.mark.parametrize("value", [float("inf"), float("nan"), -float("inf"), 0.0, True, "1e-12", None])
def test_number_refuses_non_finite_bool_strings_and_the_bound(value):
    with pytest.raises(InputError, match="eps must be a finite number > 0"):
        check_number("eps", value, minimum=0, exclusive_minimum=True)


def test_number_accepts_ints_and_bounds():
    assert check_number("p", 1, minimum=0, maximum=1) == 1.0
    with pytest.raises(InputError, match="<= 1"):
        check_number("p", 1.5, minimum=0, maximum=1)


@pytest.mark.parametrize("text, match", [
    ('{"a": ' + "9" * 5000 + "}", "not valid JSON"),   # past Python's int-digits limit: a plain ValueError
    ("{", "not valid JSON"),
    ("[" * 100_000, "too deeply"),
])
def test_read_json_names_the_file_for_every_unreadable_file(tmp_path, text, match):
    path = tmp_path / "side.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CheckpointError, match=rf"cannot read .*side\.json: .*{match}"):
        read_json(path)
