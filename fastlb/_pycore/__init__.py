"""fastlb._pycore: the readable twin of the native core.

Same names, same contracts as fastlb._core, one module per _cy/ fragment,
written for clarity (naive scans, a bisect ring).  It is never used at run
time; the tests run every core test on both (the ``core`` fixture) and
hypothesis checks they agree.
"""

from fastlb.types import (  # noqa: F401  (re-exported like _core's cpdef enums)
    BackendState, BodyKind, ErrCode, HeaderFlag, HeaderKind, Method, ScanStatus,
)

# Each fragment's names below, in _core.pyx include order, one block per
# module (kept apart by blank lines so parallel branches merge cleanly).

# -- hash


# -- http1
from .http1 import HeadScanner, RequestScanner, ResponseScanner  # noqa: F401,E402


# -- chunked
from .chunked import ChunkedFramer  # noqa: F401,E402


# -- cookie
from .cookie import find_cookie, parse_set_cookie  # noqa: F401,E402


# -- rewrite
from .rewrite import (  # noqa: F401,E402
    RequestRewriter, ResponseRewriter, SetCookieBuilder, prefix_set_cookie, remove_cookie,
    strip_cookie_prefix,
)


# -- table


# -- picker and algorithms
