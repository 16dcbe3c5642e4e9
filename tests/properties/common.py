"""What the property tests share: the Hypothesis profile, input strategies, and the one
check every validator and loader must pass.

The contract under test (issue 6): any input either loads, or is refused with genisys'
own error (``Invalid`` for requests, ``ConfigError`` for files and settings) carrying a
message. Any other exception is a bug; the tests let it propagate so that Hypothesis
reports it with a shrunk, minimal input.
"""

import datetime
import os
import string
import typing

from hypothesis import settings
from hypothesis import strategies as st

from genisys.model import Compute

settings.register_profile(
    "genisys-properties",
    # 200 examples per property keeps the whole directory within seconds on CI's two
    # cores; GENISYS_PROPERTY_EXAMPLES=20000 makes a longer hunt on a developer machine.
    max_examples=int(os.environ.get("GENISYS_PROPERTY_EXAMPLES", "200")),
    # A loaded CI machine makes timings meaningless; a slow example is not a failure.
    deadline=None,
    # The same examples on every run: a CI failure reproduces anywhere, and a green
    # suite cannot turn red by chance on an unrelated change.
    derandomize=True,
    # With derandomize there is nothing to replay, so no .hypothesis/ directory.
    database=None,
)

#: Every property is decorated with this rather than the profile being loaded: loading
#: it would change every other Hypothesis user in the suite (the schemathesis tests).
PROPERTY = settings.get_profile("genisys-properties")


def outcome(call, error):
    """``(result, None)``, or ``(None, exc)`` when ``call`` refused with ``error``.

    Anything else ``call`` raises propagates: that is the bug these tests look for."""
    try:
        return call(), None
    except error as e:
        assert isinstance(e.message, str) and e.message.strip(), "an error without a message"
        return None, e


# -- text ------------------------------------------------------------------------

#: Characters that break naive parsers, mixed in more often than chance would: NUL and
#: other controls, every kind of line end, a BOM, lone surrogates (JSON's \ud800 makes
#: them), a non-ASCII digit (\d and int() take it), the Kelvin sign (case-folds to
#: "k"), a full-width "#" (NFKC-folds to "#") and a right-to-left mark.
AWKWARD = ("\x00\x01\t\n\r\x0b\x0c\x1f\x7f\x85\xa0\u2028\u2029\ufeff\ud800\udfff"
           "\u0663\u212a\uff03\u200f")

#: Any code point, surrogates included (st.characters leaves them out by default).
characters = st.characters(exclude_categories=()) | st.sampled_from(AWKWARD)
text = st.text(characters)
#: Text that can be written to a UTF-8 file (a file read as UTF-8 can't hold surrogates).
file_text = st.text(st.characters(exclude_categories=("Cs",))
                    | st.sampled_from(AWKWARD.replace("\ud800", "").replace("\udfff", "")))
#: Text with no NUL: what a command line or an environment variable can carry.
argument_text = st.text(characters.filter(lambda c: c != "\x00"))

# -- numbers and values ------------------------------------------------------------

#: Past 64 bits and past what a float can hold. Nothing beyond Python's 4300-digit
#: int/str limit: no input path can produce such an int as a number (json.loads and
#: int() refuse it), and Hypothesis itself could not print the example.
huge_integers = st.sampled_from([2**63, -2**63 - 1, 2**64, 10**308, 10**309, 10**400,
                                 -10**400, 2**1024])
integers = st.integers() | huge_integers

json_scalars = st.none() | st.booleans() | integers | st.floats() | text


def json_values(scalars=json_scalars, keys=text):
    """Nested lists and objects of ``scalars``, as json.loads would return them."""
    return st.recursive(
        scalars,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children,
                                                                          max_size=4),
        max_leaves=20)


#: Anything a JSON body can decode to, NaN and infinities included.
any_json = json_values()
#: What json.dumps writes as standard JSON: no NaN or infinities.
strict_json = json_values(st.none() | st.booleans() | st.integers()
                          | st.floats(allow_nan=False, allow_infinity=False) | text)
#: Values YAML and Python literals have and JSON has not.
non_json = st.from_type(typing.Union[bytes, complex, datetime.date, datetime.datetime,
                                     tuple[int, str], frozenset[int]])
any_value = any_json | non_json


def nested(opening, middle="", closing="", *, deep=(999, 1_001)):
    """``opening * n + middle + closing * n``: a parser's recursion, from shallow to
    past Python's recursion limit (1000) or whatever depths ``deep`` names."""
    depths = st.integers(1, 50) | st.sampled_from(deep)
    return depths.map(lambda n: opening * n + middle + closing * n)


#: Integer literals as YAML and Python sources spell them, up to more digits than
#: int(), str() and repr() accept (4300): a hex literal has no such limit, so a file
#: can hold an int that genisys can't format in its error message.
huge_literals = (st.integers(1, 5_000).map(lambda n: "0x" + "f" * n)
                 | st.integers(4_000, 5_000).map(lambda n: "1" + "0" * n))

# -- names and URLs --------------------------------------------------------------------

#: The documented name grammar (RFC 1123 label, either case), as written in the docs.
NAME_GRAMMAR = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
NAME_CHARACTERS = frozenset(string.ascii_letters + string.digits + "-")


def follows_name_grammar(value):
    """The grammar read a second way, without a regex (``$`` and ``\\d`` traps included)."""
    return (isinstance(value, str) and 1 <= len(value) <= 63
            and set(value) <= NAME_CHARACTERS and value[0] != "-" and value[-1] != "-")


# from_regex rarely reaches the 63-character limit; the second half does.
names = (st.from_regex(NAME_GRAMMAR, fullmatch=True)
         | st.text(string.ascii_letters + string.digits + "-", min_size=1, max_size=63)
         .filter(follows_name_grammar))
#: Near misses around the grammar's edges, and anything at all.
name_candidates = st.text(string.ascii_letters + string.digits + "-_. " + AWKWARD,
                          max_size=70) | text

#: Hosts a connector may have: DNS names, IPv4 and bracketed IPv6 addresses.
hosts = (st.lists(names, min_size=1, max_size=4).map(".".join)
         | st.ip_addresses(v=4).map(str)
         | st.ip_addresses(v=6).map(lambda ip: "[%s]" % ip))
url_paths = st.lists(st.text(string.ascii_letters + string.digits + "-._~%", min_size=1,
                             max_size=8), max_size=3).map(lambda parts: "".join(
                                 "/" + p for p in parts)) | st.just("/")


@st.composite
def connector_urls(draw):
    """Well-formed absolute http(s) URLs with no credentials, query or fragment."""
    scheme = draw(st.sampled_from(["http", "https", "HTTP", "Https"]))
    port = draw(st.none() | st.integers(1, 65535))
    return "%s://%s%s%s" % (scheme, draw(hosts), "" if port is None else ":%d" % port,
                            draw(st.just("") | url_paths))


@st.composite
def mutated_urls(draw):
    """A well-formed URL with a few characters inserted somewhere."""
    url = draw(connector_urls())
    at = draw(st.integers(0, len(url)))
    return url[:at] + draw(st.text(characters, min_size=1, max_size=3)) + url[at:]


url_candidates = text | mutated_urls() | st.builds(
    "".join,
    st.tuples(st.sampled_from(["http", "https", "HTTP", "ftp", "", "http:", "file", " http"])
              | text,
              st.sampled_from(["://", ":/", ":", "//", ":///", ""]),
              st.sampled_from(["", "user@", ":@", "a:b@"]),
              hosts | name_candidates,
              st.sampled_from(["", ":", ":0", ":80", ":65536", ":-1", ":\u0663", ":8x"]),
              st.sampled_from(["", "/", "?q", "#f", "?", "#"]) | text))

computes = st.builds(Compute, name=names, connector=connector_urls())
