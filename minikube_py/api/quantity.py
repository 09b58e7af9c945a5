"""Kubernetes resource quantities (`100m`, `1.5Gi`, `2e3`) parsed to exact decimals.

A quantity is a signed decimal number followed by one suffix: a binary SI suffix
(Ki..Ei, powers of 1024), a decimal SI suffix (n, u, m, "", k, M..E, powers of 1000)
or a decimal exponent (`e3`, `E-2`). Parsing to `Decimal` keeps `0.1` and `100m`
exactly equal, which the scheduler needs when it sums requests against capacity.
"""

import re
from decimal import Decimal, InvalidOperation

# Kubernetes reports this exact pattern when a quantity does not parse.
QUANTITY_PATTERN = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
QUANTITY_ERROR = f"quantities must match the regular expression '{QUANTITY_PATTERN}'"

_NUMBER = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(.*)$")
_EXPONENT = re.compile(r"^[eE]([+-]?[0-9]+)$")

_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


def parse_quantity(value: str | int | float) -> Decimal:
    """The quantity's value in base units (cores, bytes); ValueError when malformed."""
    if isinstance(value, bool):
        raise ValueError(QUANTITY_ERROR)
    if isinstance(value, int | float):  # JSON numbers are accepted, as by the Go decoder
        return Decimal(str(value))
    match = _NUMBER.match(value.strip())
    if not match:
        raise ValueError(QUANTITY_ERROR)
    number, suffix = match.groups()
    try:
        mantissa = Decimal(number)
    except InvalidOperation as exc:
        raise ValueError(QUANTITY_ERROR) from exc
    if suffix in _BINARY:
        return mantissa * (Decimal(2) ** _BINARY[suffix])
    if suffix in _DECIMAL:
        return mantissa.scaleb(_DECIMAL[suffix])
    exponent = _EXPONENT.match(suffix)
    if exponent:
        return mantissa.scaleb(int(exponent.group(1)))
    raise ValueError(QUANTITY_ERROR)
