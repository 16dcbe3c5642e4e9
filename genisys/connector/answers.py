"""What genisys reads of a connector's answer: at most a limit, and in a form fit for a status.

A connector is a separate program, often someone else's, and may be buggy or
hostile. ``AnswerReader`` takes the head and body of one answer from libcurl as
they arrive and gives up as soon as the body passes its limit (a Content-Length
over it: before any of the body is read), so an answer never costs more memory
than the limit. ``readable`` turns a body into the one line a status message
quotes: the message of a JSON error in the protocol's shape, the text of an
HTML page, else the body itself; control characters never get through.
"""

import dataclasses
import html.parser
import json
import re
import unicodedata

import pycurl

#: How many characters of an answer a status message quotes.
EXCERPT_CHARS = 256
#: How much of an HTML page is parsed for its message: the message is at the top,
#: and html.parser takes some 40 µs a tag: a MiB of tags would cost seconds a call.
HTML_PARSED_BYTES = 16 * 1024

# At most 18 digits: a longer run is no size curl would take, and int() of thousands
# of digits raises (in a libcurl callback). The body's own count still applies.
_CONTENT_LENGTH = re.compile(rb"content-length\s*:\s*(\d{1,18})\s*$", re.IGNORECASE)
_CONTENT_TYPE = re.compile(rb"content-type\s*:\s*(.*?)\s*$", re.IGNORECASE)
# Only the delay-seconds form (RFC 9110): connectors answer it; an HTTP date is ignored.
_RETRY_AFTER = re.compile(rb"retry-after\s*:\s*(\d{1,9})\s*$", re.IGNORECASE)
#: The longest Retry-After genisys waits: a connector's own word, so bounded like the
#: backoff it stands in for (the controller's backoff maximum is a minute by default).
MAX_RETRY_AFTER = 300


def size_text(size):
    """``1048576`` -> ``"1 MiB"``; sizes that are not whole KiB or MiB stay in bytes."""
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor and size % factor == 0:
            return "%d %s" % (size // factor, unit)
    return "%d bytes" % size


@dataclasses.dataclass(frozen=True)
class TooLarge:
    """An answer whose body passed the limit: bytes ``seen`` of it, and its
    Content-Length (``declared``) if it had one."""

    limit: int
    seen: int
    declared: object = None

    def describe(self, setting):
        """What happened, naming the limit as ``setting`` (the setting that sets it)."""
        if self.declared is not None:
            return "its body is %d bytes (Content-Length), over the limit of %s (%s)" % (
                self.declared, size_text(self.limit), setting)
        return "its body passed the limit of %s (%s): cut after %d bytes" % (
            size_text(self.limit), setting, self.seen)


class AnswerReader:
    """The head and body of one answer, read by libcurl's callbacks, up to ``limit`` bytes.

    Installed with ``install(curl)`` (tornado's ``prepare_curl_callback``): it replaces
    the header and write functions tornado set, so tornado's response has neither
    headers nor body; they are here. Returning less than it was given makes libcurl
    fail the transfer (CURLE_WRITE_ERROR), which is how it stops reading."""

    def __init__(self, limit):
        self.limit = limit
        self.body = bytearray()
        self.content_type = ""
        self.declared = None
        #: Seconds of the answer's Retry-After (at most MAX_RETRY_AFTER), None without one.
        self.retry_after = None
        #: Bytes of the body seen, those not kept included.
        self.seen = 0
        #: A TooLarge once the limit was passed, else None.
        self.too_large = None

    def install(self, curl):
        # tornado's curl client turns libcurl's verbose trace on when its logger is at
        # DEBUG: that trace holds every header sent, the connector's token among them.
        curl.setopt(pycurl.VERBOSE, 0)
        curl.setopt(pycurl.HEADERFUNCTION, self._header)
        curl.setopt(pycurl.WRITEFUNCTION, self._write)

    def _header(self, line):
        if line.startswith(b"HTTP/"):  # a new answer (after a 100 Continue): forget the last
            self.content_type, self.declared, self.retry_after = "", None, None
            return None
        match = _RETRY_AFTER.match(line)
        if match:
            self.retry_after = min(int(match.group(1)), MAX_RETRY_AFTER)
        match = _CONTENT_LENGTH.match(line)
        if match:
            self.declared = int(match.group(1))
            if self.declared > self.limit:
                self.too_large = TooLarge(limit=self.limit, seen=0, declared=self.declared)
                return 0
        match = _CONTENT_TYPE.match(line)
        if match:
            self.content_type = match.group(1).decode("latin-1").lower()
        return None

    def _write(self, chunk):
        self.seen += len(chunk)
        if self.seen > self.limit:
            self.too_large = TooLarge(limit=self.limit, seen=self.seen, declared=self.declared)
            self.body = bytearray()  # let it go now, not when the call ends
            return 0
        self.body += chunk
        return None


# -- one line out of a body ---------------------------------------------------------


def one_line(text, limit=EXCERPT_CHARS):
    """``text`` with control and format characters dropped, whitespace runs made one
    space, cut to ``limit`` characters."""
    kept = "".join(" " if c.isspace() else c for c in text
                   if c.isspace() or unicodedata.category(c) not in ("Cc", "Cf"))
    line = " ".join(kept.split())
    return line if len(line) <= limit else line[:limit - 3] + "..."


class _PageText(html.parser.HTMLParser):
    """The title and the text blocks of an HTML page, in order, up to its footer."""

    #: Elements that end a block of text.
    BLOCKS = {"p", "pre", "div", "h1", "h2", "h3", "h4", "h5", "h6", "li", "td", "th",
              "blockquote", "dd", "dt", "tr", "table", "ul", "ol", "center", "body",
              "section", "article", "main", "header"}
    #: Elements whose text is not shown.
    HIDDEN = {"style", "script", "template", "noscript"}
    #: Where a page's message ends: below is the server's signature or navigation.
    FOOTERS = {"hr", "footer", "address", "nav"}
    HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.title = ""
        #: (tag that holds it, text) of each block of visible text.
        self.blocks = []
        self._text = []
        self._stack = []
        self._in_title = False
        self._hidden = 0
        self._ended = False

    def handle_starttag(self, tag, attrs):
        if tag in self.FOOTERS:
            self._flush()
            self._ended = True
        elif tag == "title":
            self._in_title = True
        elif tag in self.HIDDEN:
            self._hidden += 1
        elif tag == "br":
            self._flush()
        elif tag in self.BLOCKS:
            self._flush()
            self._stack.append(tag)

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        elif tag in self.HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in self.BLOCKS:
            self._flush()
            if tag in self._stack:
                del self._stack[self._stack.index(tag):]

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        elif not self._hidden and not self._ended:
            self._text.append(data)

    def _flush(self):
        text = one_line("".join(self._text), limit=10 * EXCERPT_CHARS)
        self._text = []
        if text:
            self.blocks.append((self._stack[-1] if self._stack else "", text))

    def message(self):
        """The page's message: its first paragraph (or the block a paragraph ending
        in ":" introduces), else its first heading, else its title."""
        self._flush()
        title = one_line(self.title)
        blocks = [(tag, text) for tag, text in self.blocks if text != title]
        for i, (tag, text) in enumerate(blocks):
            if tag in self.HEADINGS:
                continue
            if text.endswith(":") and i + 1 < len(blocks):
                return blocks[i + 1][1]
            return text
        headings = [text for tag, text in blocks if tag in self.HEADINGS]
        return headings[0] if headings else title


def _is_html(body, content_type):
    if "html" in content_type:
        return True
    start = body[:64].lstrip().lower()
    return start.startswith((b"<!doctype html", b"<html"))


def _json_error(body):
    """The message of ``{"error": {"message": ...}}`` (the protocol's error shape; the
    reason if it has no message) or of ``{"error": "..."}``; None for anything else.
    Not its ``field``: a batch answer's error entries have none, and the same error
    reads the same whichever way it came."""
    try:
        error = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError, RecursionError):
        return None
    if isinstance(error, str):
        return error
    if isinstance(error, dict):
        for key in ("message", "reason"):
            if isinstance(error.get(key), str) and error[key].strip():
                return error[key]
    return None


def readable(body, content_type=""):
    """The one line a status message quotes of ``body`` (bytes; ``content_type`` as the
    answer said it, lower case)."""
    if not body.strip():
        return "(empty body)"
    message = _json_error(body)
    if message is None and _is_html(body, content_type):
        page = _PageText()
        # Not close()d, which would give a tag cut in two at HTML_PARSED_BYTES as text; the
        # space lets the parser take a character reference at the very end ("&c").
        page.feed(body[:HTML_PARSED_BYTES].decode("utf-8", errors="replace") + " ")
        message = page.message()
    if message is None or not one_line(message):
        message = body[:4 * EXCERPT_CHARS].decode("utf-8", errors="replace")
    return one_line(message) or "(no readable text)"
