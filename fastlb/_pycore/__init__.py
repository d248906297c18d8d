"""fastlb._pycore: the readable twin of the native core.

Same names, same contracts as fastlb._core, one module per _cy/ fragment,
written for clarity (naive scans, a bisect ring).  It is never used at run
time; the tests run every core test on both (the ``core`` fixture) and
hypothesis checks they agree.
"""

from fastlb.types import (  # noqa: F401  (re-exported like _core's cpdef enums)
    BackendState, BodyKind, ErrCode, HeaderFlag, HeaderKind, KeyKind, Method, ScanStatus,
)

# Each fragment's names below, in _core.pyx include order, one block per
# module (kept apart by blank lines so parallel branches merge cleanly).

# -- hash
from .hash import hash_bytes, mix64  # noqa: F401


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
from .table import ServerTable  # noqa: F401


# -- picker and algorithms
from .picker import PICKERS, Picker  # noqa: F401
from .lb_wrr import RoundRobinPicker  # noqa: F401
from .lb_leastconn import LeastConnPicker  # noqa: F401
from .lb_p2c import P2CPicker  # noqa: F401
from .lb_source import SourceHashPicker  # noqa: F401
from .lb_ring import RingPicker  # noqa: F401
from .lb_maglev import MaglevPicker  # noqa: F401


# -- route
from .route import Router  # noqa: F401,E402
