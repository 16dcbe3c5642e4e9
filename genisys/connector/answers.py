"""What genisys reads of a connector's answer: at most a limit, and in a form fit for a status.

A connector is a separate program, often someone else's, and may be buggy or
hostile. ``read`` takes the head and body of one answer as they arrive and gives
up as soon as the body passes its limit (a Content-Length over it: before any of
the body is read), so an answer never costs more memory than the limit.
``readable`` turns a body into the one line a status message quotes: the message
of a JSON error in the protocol's shape, the text of an HTML page, else the body
itself; control characters never get through.
"""

import dataclasses
import html.parser
import json
import re
import unicodedata

#: How many characters of an answer a status message quotes.
EXCERPT_CHARS = 256
#: How much of an HTML page is parsed for its message: the message is at the top,
#: and html.parser takes some 40 µs a tag: a MiB of tags would cost seconds a call.
HTML_PARSED_BYTES = 16 * 1024

# Only the delay-seconds form (RFC 9110): connectors answer it; an HTTP date is ignored.
_RETRY_AFTER = re.compile(r"\s*(\d{1,9})\s*$")
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


class AnswerTooLarge(Exception):
    """``read`` gave up on an answer: ``too_large`` says how."""

    def __init__(self, too_large):
        super().__init__(too_large)
        self.too_large = too_large


@dataclasses.dataclass
class Answer:
    """The head and body of one answer, read up to ``limit`` bytes (``read``)."""

    status: int
    body: bytes
    content_type: str = ""
    #: Seconds of the answer's Retry-After (at most MAX_RETRY_AFTER), None without one.
    retry_after: object = None


def retry_after(value):
    """A Retry-After header's seconds, at most MAX_RETRY_AFTER; None for anything but
    the delay-seconds form (an HTTP date is ignored: connectors answer seconds)."""
    match = _RETRY_AFTER.match(value or "")
    return min(int(match.group(1)), MAX_RETRY_AFTER) if match else None


async def read(response, limit):
    """The Answer of an aiohttp ``response``, its body read up to ``limit`` bytes;
    AnswerTooLarge past it, as soon as it is passed (a Content-Length over it: before any of
    the body is read). The connection of an answer not read to its end is closed."""
    declared = response.content_length
    if declared is not None and declared > limit:
        raise AnswerTooLarge(TooLarge(limit=limit, seen=0, declared=declared))
    body = bytearray()
    while True:
        # Never more than one byte past the limit: enough to know it was passed.
        chunk = await response.content.read(limit + 1 - len(body))
        if not chunk:
            break
        body += chunk
        if len(body) > limit:
            raise AnswerTooLarge(TooLarge(limit=limit, seen=len(body), declared=declared))
    headers = response.headers
    return Answer(response.status, bytes(body),
                  content_type=headers.get("Content-Type", "").strip().lower(),
                  retry_after=retry_after(headers.get("Retry-After")))


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
