"""What an HTTP/1.1 request must be before its body is read, in the embedded server and
the logging proxy alike: one unambiguous framing, and a target that names a resource
of this server.

Request smuggling needs two parties that disagree on where a request ends: a
front-end that frames a body by `Transfer-Encoding` and a back-end that frames it by
`Content-Length`, or two `Content-Length` values read differently. So a request that
carries both framing headers, several lengths, a malformed header line or an
obsolete folded one is refused with 400 and its connection closed (RFC 9112 sections
5.1, 5.2 and 6.3); a chunked body is refused with 411 (the server reads only bodies
of a stated length, as TF Serving's REST API is used).

The target is either a path (`/...`, origin form) or an absolute `http(s)://` URI
(absolute form, which RFC 9112 section 3.2.2 says a server must accept): only its
path and query count. Anything else (`:18611/x`, `@host/x`, `*`) is refused with 400,
so the proxy, which appends the target to its backend's address, cannot be steered to
another host or port.
"""

from __future__ import annotations

import re
from typing import Optional, Tuple
from urllib.parse import urlsplit

# Content-Length as 1-15 ASCII digits (int() also takes Unicode digits, signs, blanks).
_LENGTH = re.compile(r"[0-9]{1,15}")
# A request target is visible ASCII: no blanks, no control bytes (RFC 9112 3.2).
_TARGET = re.compile(r"[\x21-\x7e]+")


def framing_refusal(headers) -> Optional[Tuple[int, str]]:
    """(HTTP status, why) when the headers do not frame one body unambiguously, else
    None. `headers`: http.server's parsed headers (an email.message.Message)."""
    if headers.defects:
        return 400, ("a header line is malformed (a name with a blank before its colon, "
                     "or no colon)")
    for name, value in headers.items():
        if "\n" in value or "\r" in value:
            return 400, (f"header {name[:40]!r} is folded over several lines, which is "
                         f"refused (RFC 9112 section 5.2)")
    lengths = headers.get_all("Content-Length") or []
    encodings = headers.get_all("Transfer-Encoding") or []
    if lengths and encodings:
        return 400, ("the request has both Transfer-Encoding and Content-Length: its "
                     "length is ambiguous (RFC 9112 section 6.3)")
    if encodings:
        return 411, ("a Content-Length header is required: Transfer-Encoding "
                     f"{encodings[0][:40]!r} is not accepted")
    if len(lengths) > 1:
        return 400, (f"the request has {len(lengths)} Content-Length headers "
                     f"({', '.join(value[:20] for value in lengths[:4])}): its length is "
                     f"ambiguous")
    if lengths and not _LENGTH.fullmatch(lengths[0].strip()):
        return 400, f"Content-Length {lengths[0][:40]!r} is not a non-negative integer"
    return None


def content_length(headers) -> Optional[int]:
    """The body's length from headers that `framing_refusal` passed; None when absent."""
    announced = headers.get("Content-Length")
    return None if announced is None else int(announced.strip())


def origin_form(target: str) -> Optional[str]:
    """The path and query of a request target in origin form (`/path?query`) or
    absolute form (`http://host/path?query`, the host ignored); None for any other."""
    if not _TARGET.fullmatch(target) or "#" in target:
        return None
    if target.startswith("/"):
        return target
    scheme, separator, _ = target.partition("://")
    if not separator or scheme.lower() not in ("http", "https"):
        return None
    parts = urlsplit(target)
    if not parts.netloc:
        return None
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def refused_target(target: str) -> str:
    """The message for a target `origin_form` refuses."""
    return (f"the request target {target[:80]!r} is neither a path (/...) nor an "
            f"absolute http(s) URI")
