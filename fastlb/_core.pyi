# Type stubs for fastlb._core (mypy).  Each fragment's public classes are
# stubbed here as they are written; the enums mirror fastlb/types.py.
from fastlb.types import (
    BackendState as BackendState,
    BodyKind as BodyKind,
    ErrCode as ErrCode,
    HeaderFlag as HeaderFlag,
    HeaderKind as HeaderKind,
    Method as Method,
    ScanStatus as ScanStatus,
)

# -- hash


# -- http1


# -- chunked


# -- cookie


# -- rewrite


# -- table


# -- picker and algorithms
