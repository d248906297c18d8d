"""types: IntEnum mirrors of the native core's enums (fastlb/_core.pxd).

Python code names core values through these.  They hold values only; a test
(tests/test_types.py) checks each member against both cores.
"""

from enum import IntEnum, IntFlag


class ScanStatus(IntEnum):
    SCAN_MORE = 0
    SCAN_DONE = 1
    SCAN_ERROR = 2


class ErrCode(IntEnum):
    E_OK = 0
    E_METHOD = 1
    E_TARGET = 2
    E_TARGET_TOO_LONG = 3
    E_VERSION = 4
    E_VERSION_UNSUPPORTED = 5
    E_HEAD_TOO_LARGE = 6
    E_TOO_MANY_HEADERS = 7
    E_HEADER_NAME = 8
    E_HEADER_VALUE = 9
    E_NAME_WS = 10
    E_OBS_FOLD = 11
    E_BARE_LF = 12
    E_BARE_CR = 13
    E_NO_HOST = 14
    E_DUP_HOST = 15
    E_CL_AND_TE = 16
    E_CL_CONFLICT = 17
    E_CL_INVALID = 18
    E_TE_NOT_CHUNKED = 19
    E_TE_UNKNOWN = 20
    E_TE_HTTP10 = 21
    E_STATUS = 22
    E_CHUNK_SIZE = 23
    E_CHUNK_OVERFLOW = 24
    E_CHUNK_CRLF = 25
    E_CHUNK_EXT = 26
    E_TRAILER = 27
    E_CHUNK_LINE_TOO_LONG = 28
    E_HOST = 29


class BodyKind(IntEnum):
    BODY_NONE = 0
    BODY_LENGTH = 1
    BODY_CHUNKED = 2
    BODY_UNTIL_CLOSE = 3


class Method(IntEnum):
    M_OTHER = 0
    M_GET = 1
    M_HEAD = 2
    M_POST = 3
    M_PUT = 4
    M_DELETE = 5
    M_OPTIONS = 6
    M_TRACE = 7
    M_CONNECT = 8
    M_PATCH = 9


class HeaderKind(IntEnum):
    H_OTHER = 0
    H_HOST = 1
    H_CONNECTION = 2
    H_CONTENT_LENGTH = 3
    H_TRANSFER_ENCODING = 4
    H_COOKIE = 5
    H_SET_COOKIE = 6
    H_UPGRADE = 7
    H_EXPECT = 8
    H_KEEP_ALIVE = 9
    H_TE = 10
    H_TRAILER = 11
    H_PROXY_CONNECTION = 12
    H_X_FORWARDED_FOR = 13
    H_X_FORWARDED_PROTO = 14
    H_X_FORWARDED_HOST = 15
    H_CACHE_CONTROL = 16


class HeaderFlag(IntFlag):
    HF_HOP = 1
    HF_COOKIE_HIT = 2
    HF_DROP = 4
    HF_CANON = 8


class KeyKind(IntEnum):
    KEY_NONE = 0
    KEY_COOKIE = 1
    KEY_HEADER = 2
    KEY_URI = 3
    KEY_SOURCE = 4


class BackendState(IntEnum):
    ST_UP = 0
    ST_DOWN = 1
    ST_DRAIN = 2
    ST_MAINT = 3


# Every enum the core exports, for the parity test.
CORE_ENUMS: tuple[type[IntEnum] | type[IntFlag], ...] = (
    ScanStatus, ErrCode, BodyKind, Method, HeaderKind, HeaderFlag, KeyKind, BackendState,
)
