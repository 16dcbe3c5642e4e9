"""Properties of request-body parsing (genisys.web.parse_json): any bytes are either a
JSON value or refused with ``Invalid`` on the field ``body``; standard JSON comes back
as what was sent; duplicate fields, NaN and Infinity are refused. And of the JSON
genisys writes and reads back itself: answers (``dump_json``) and stored values
(``decode``); and the timestamps of status entries and events.
"""

import datetime
import json
import math

from hypothesis import example, given
from hypothesis import strategies as st

from genisys.errors import Invalid
from genisys.reconciler.status import timestamp
from genisys.store.base import decode
from genisys.web import dump_json, parse_json
from tests.properties.common import (
    PROPERTY,
    any_json,
    file_text,
    json_values,
    nested,
    outcome,
    strict_json,
    text,
)


def _encoded(value_and_ascii):
    value, ensure_ascii = value_and_ascii
    return json.dumps(value, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass")


@st.composite
def spliced(draw, documents):
    """A document with some of it cut out and other bytes put in: almost-JSON."""
    raw = draw(documents)
    start = draw(st.integers(0, len(raw)))
    end = draw(st.integers(start, len(raw)))
    return raw[:start] + draw(st.binary(max_size=4)) + raw[end:]


json_documents = st.tuples(any_json, st.booleans()).map(_encoded)
bodies = st.one_of(
    st.binary(),
    json_documents,
    spliced(json_documents),
    # Other encodings of JSON text, and a UTF-8 byte order mark.
    st.tuples(strict_json.map(json.dumps), st.sampled_from(["utf-16", "utf-32", "utf-8-sig",
                                                           "latin-1"]))
    .map(lambda t: t[0].encode(t[1], "replace")),
    nested("[", "", "]", deep=(999, 3_000)).map(str.encode),
    nested('{"a":', "1", "}", deep=(999, 3_000)).map(str.encode),
    st.sampled_from([b"NaN", b"-Infinity", b"[1e999]", b"\xef\xbb\xbf{}", b"\x00", b" \t\n",
                     b'"\\ud800"', b'{"a":1,"a":2}', b"1" * 5000]),
)


@PROPERTY
@given(bodies)
def test_any_body_is_json_or_refused(raw):
    _, error = outcome(lambda: parse_json(raw), Invalid)
    if error is not None:
        assert error.field == "body"


def _same(a, b):
    # == alone says True == 1 == 1.0; the re-encoded text tells them apart.
    return a == b and json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@PROPERTY
@given(strict_json)
def test_json_values_come_back_as_sent(value):
    assert _same(parse_json(json.dumps(value).encode()), value)


#: Standard JSON whose text can be sent as raw UTF-8 (no lone surrogates).
utf8_json = json_values(st.none() | st.booleans() | st.integers()
                        | st.floats(allow_nan=False, allow_infinity=False) | file_text,
                        keys=file_text)


@PROPERTY
@given(utf8_json)
def test_json_values_sent_as_raw_utf8_come_back_as_sent(value):
    assert _same(parse_json(json.dumps(value, ensure_ascii=False).encode()), value)


def _escaped(key):
    """``key`` as a JSON string with every UTF-16 code unit written as \\uXXXX."""
    units = key.encode("utf-16-be", "surrogatepass")
    return '"%s"' % "".join("\\u%02x%02x" % (units[i], units[i + 1])
                            for i in range(0, len(units), 2))


@st.composite
def objects_with_a_duplicate_field(draw):
    obj = draw(st.dictionaries(text, strict_json, min_size=1, max_size=4))
    key = draw(st.sampled_from(sorted(obj)))
    pairs = ["%s:%s" % (json.dumps(k), json.dumps(v)) for k, v in obj.items()]
    # The second spelling may differ: "a" and "\u0061" are the same field.
    again = draw(st.sampled_from([json.dumps(key), _escaped(key)]))
    pairs.insert(draw(st.integers(0, len(pairs))), "%s:%s" % (again, json.dumps(
        draw(strict_json))))
    document = "{%s}" % ",".join(pairs)
    # ... possibly deep inside another document.
    for _ in range(draw(st.integers(0, 3))):
        document = draw(st.sampled_from(["[%s]", '{"spec":%s}', '[1,%s,"x"]'])) % document
    return document.encode()


@PROPERTY
@given(objects_with_a_duplicate_field())
def test_a_duplicate_field_is_refused_wherever_it_is(raw):
    _, error = outcome(lambda: parse_json(raw), Invalid)
    assert error is not None and error.field == "body" and "duplicate" in error.message


@st.composite
def documents_with_a_non_finite_number(draw):
    items = draw(st.lists(strict_json, max_size=3))
    items.insert(draw(st.integers(0, len(items))),
                 draw(st.sampled_from([math.nan, math.inf, -math.inf])))
    value = draw(st.sampled_from([items, {"spec": items}]))
    return json.dumps(value, allow_nan=True).encode()


@PROPERTY
@given(documents_with_a_non_finite_number())
def test_nan_and_infinity_are_refused(raw):
    _, error = outcome(lambda: parse_json(raw), Invalid)
    assert error is not None and error.field == "body"


def _finite(value):
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


@PROPERTY
@given(st.from_regex(r"-?(0|[1-9][0-9]{0,3})(\.[0-9]{1,3})?[eE][+-]?[0-9]{1,4}",
                     fullmatch=True))
@example("1e999")
def test_a_number_is_finite_or_refused(number):
    # The docstring promises no NaN/Infinity; a number too large for a float becomes
    # inf in json.loads unless parse_json refuses it.
    value, error = outcome(lambda: parse_json(("[%s]" % number).encode()), Invalid)
    assert error is not None or _finite(value), value


def _pairs_sorted(pairs):
    keys = [k for k, _ in pairs]
    assert keys == sorted(keys)
    return dict(pairs)


@PROPERTY
@given(strict_json)
def test_an_answer_is_the_value_itself_keys_sorted(value):
    """What every handler sends (genisys.web.dump_json, orjson or json for what orjson
    cannot write): the same value back, every object's keys in order, one line."""
    text = dump_json(value)
    assert text.endswith(b"\n") and b"\n" not in text[:-1]
    assert json.loads(text, object_pairs_hook=_pairs_sorted) == value


@PROPERTY
@given(st.dictionaries(text, json_values(st.none() | st.booleans()
                                         | st.integers(-2**63, 2**64 - 1)
                                         | st.floats(allow_infinity=False) | text),
                       max_size=4))
def test_a_stored_value_reads_back_as_it_was_written(value):
    """genisys.store.base.decode (orjson, json for what orjson refuses) reads what the
    embedded stores write (json.dumps) as json.loads would, NaN included; integers
    past 64 bits are outside it (orjson reads them as floats; no model holds one)."""
    stored = json.dumps(value, separators=(",", ":"))
    assert _same(decode(stored), json.loads(stored))


def _same(a, b):
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_same, a, b))
    return a == b and type(a) is type(b)


@PROPERTY
@given(st.datetimes(min_value=datetime.datetime(1000, 1, 1),
                    timezones=st.just(datetime.timezone.utc)))
def test_a_timestamp_is_what_strftime_would_say(now):
    assert timestamp(now) == now.strftime("%Y-%m-%dT%H:%M:%SZ")
