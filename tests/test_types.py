"""The IntEnum mirrors in fastlb.types match both cores' enums value for value."""

from __future__ import annotations

from types import ModuleType

import pytest

from fastlb import types


@pytest.mark.parametrize("enum", types.CORE_ENUMS, ids=lambda e: e.__name__)
def test_enum_matches_core(core: ModuleType, enum: type) -> None:
    native = getattr(core, enum.__name__)
    want = {m.name: int(m) for m in enum}
    got = {m.name: int(m) for m in native}
    assert got == want


def test_every_error_code_maps_to_a_status() -> None:
    from fastlb import errors

    for code in types.ErrCode:
        if code == types.ErrCode.E_OK:
            continue
        exc = errors.from_core_code(code)
        assert exc.reason != "unclassified core error", code
        assert exc.status in (400, 414, 431, 501, 502, 505)


def test_unknown_code_maps_without_raising() -> None:
    from fastlb import errors

    exc = errors.from_core_code(9999)
    assert exc.status == 400
