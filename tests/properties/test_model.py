"""Properties of the request validators (genisys.model): whatever a client sends is either
the value it stands for or refused with ``Invalid`` naming the field, and everything the
documented grammars allow is accepted unchanged."""

import json

from hypothesis import example, given
from hypothesis import strategies as st

from genisys.errors import Invalid
from genisys.model import (
    Compute,
    check_fields,
    validate_connector_url,
    validate_count,
    validate_name,
    validate_replicas,
)
from genisys.web import parse_json
from tests.properties.common import (
    PROPERTY,
    any_json,
    any_value,
    computes,
    connector_urls,
    follows_name_grammar,
    huge_integers,
    name_candidates,
    names,
    outcome,
    text,
    url_candidates,
)

# -- names ---------------------------------------------------------------------------


@PROPERTY
@given(names)
def test_names_from_the_grammar_are_accepted_unchanged(name):
    assert validate_name(name, "name") == name


@PROPERTY
@given(name_candidates)
@example("a" * 63)
@example("a" * 64)
@example("a-")
@example("-a")
@example("a\n")  # fullmatch, not match + "$" (which allows a final newline)
@example("\u0663")  # an Arabic-Indic digit: [0-9], not \d
@example("\u212a")  # the Kelvin sign: no case-insensitive matching
@example("")
def test_a_string_is_a_name_exactly_when_it_follows_the_grammar(candidate):
    value, error = outcome(lambda: validate_name(candidate, "spec.name"), Invalid)
    if follows_name_grammar(candidate):
        assert error is None and value == candidate
    else:
        assert error is not None and error.field == "spec.name"


@PROPERTY
@given(any_value.filter(lambda v: not isinstance(v, str)))
def test_only_strings_are_names(value):
    _, error = outcome(lambda: validate_name(value, "name"), Invalid)
    assert error is not None and error.field == "name"


# -- counts -------------------------------------------------------------------------


@PROPERTY
@given(st.integers(0, 10**6).flatmap(lambda m: st.tuples(st.just(m), st.integers(0, m))))
def test_counts_from_0_to_the_maximum_are_accepted(maximum_and_count):
    maximum, count = maximum_and_count
    assert validate_count(count, "number", maximum) == count


def _count_candidates(maximum):
    return st.one_of(
        st.integers(-3, maximum + 3), st.integers(max_value=-1),
        st.integers(min_value=maximum + 1), huge_integers, st.booleans(), st.floats(),
        st.integers(0, maximum).map(float), st.integers(0, maximum).map(str), any_value)


@PROPERTY
@given(st.data(), st.integers(0, 10**6))
def test_a_value_is_a_count_exactly_when_it_is_an_integral_number_in_range(data, maximum):
    value = data.draw(_count_candidates(maximum), label="value")
    result, error = outcome(lambda: validate_count(value, "number", maximum), Invalid)
    # bool is an int to Python, but true is not a count; an integral number (3.0) is one,
    # as in JSON Schema.
    integral = type(value) is int or (type(value) is float and value.is_integer())
    if integral and 0 <= value <= maximum:
        assert error is None and result == value and type(result) is int
    else:
        assert error is not None and error.field == "number"


# -- replicas --------------------------------------------------------------------------


@PROPERTY
@given(st.dictionaries(names, st.integers(0, 1000), max_size=5))
def test_replicas_of_valid_names_and_counts_are_accepted_unchanged(replicas):
    assert validate_replicas(replicas, maximum=1000) == replicas


@PROPERTY
@given(any_json | st.dictionaries(name_candidates, st.integers(-2, 1002) | any_json,
                                  max_size=4))
def test_any_replicas_are_accepted_or_refused_naming_the_field(value):
    result, error = outcome(lambda: validate_replicas(value, maximum=1000), Invalid)
    if error is not None:
        assert error.field == "replicas" or error.field.startswith("replicas.")
    else:
        assert result == value
        assert all(follows_name_grammar(k) and type(v) is int and 0 <= v <= 1000
                   for k, v in result.items())


# -- fields of a body ---------------------------------------------------------------

FIELDS = ["name", "connector", "replicas", "number"]


@PROPERTY
@given(body=any_json | st.dictionaries(st.sampled_from(FIELDS) | text, any_json, max_size=4),
       required=st.sets(st.sampled_from(FIELDS)), optional=st.sets(st.sampled_from(FIELDS)),
       where=st.sampled_from(["", "spec"]))
def test_check_fields_refuses_exactly_unknown_and_missing_fields(body, required, optional,
                                                                 where):
    required, optional = sorted(required), sorted(optional)
    _, error = outcome(lambda: check_fields(body, required=required, optional=optional,
                                            where=where), Invalid)
    if not isinstance(body, dict):
        assert error is not None and error.field == (where or "body")
        return
    unknown = [k for k in body if k not in required and k not in optional]
    missing = [k for k in required if k not in body]
    if not unknown and not missing:
        assert error is None
    else:
        prefix = where + "." if where else ""
        assert error is not None and error.field in [prefix + k for k in unknown + missing]


# -- computes --------------------------------------------------------------------------

compute_like_bodies = st.fixed_dictionaries({}, optional={
    "name": names | name_candidates | any_json,
    "connector": connector_urls() | url_candidates | any_json,
    "extra": any_json,
})


@PROPERTY
@given(body=compute_like_bodies | any_json, url_name=st.none() | names | name_candidates)
def test_any_body_is_a_compute_or_refused_naming_the_field(body, url_name):
    compute, error = outcome(lambda: Compute.from_body(body, name=url_name), Invalid)
    if error is not None:
        # Not "assert error.field": an unknown field spelled "" is named "", truly.
        assert error.field is not None
        return
    assert follows_name_grammar(compute.name)
    assert validate_connector_url(compute.connector) == compute.connector
    if url_name is not None:
        assert compute.name == url_name


@PROPERTY
@given(computes)
def test_a_compute_survives_its_json(compute):
    assert Compute.from_body(compute.to_json()) == compute
    assert Compute.from_body(compute.to_json(), name=compute.name) == compute
    assert Compute.from_body({"connector": compute.connector}, name=compute.name) == compute
    # ... and the wire, as a PUT sends it.
    assert Compute.from_body(parse_json(json.dumps(compute.to_json()).encode())) == compute


# -- connector URLs --------------------------------------------------------------------


@PROPERTY
@given(connector_urls())
def test_well_formed_connector_urls_are_accepted_unchanged(url):
    assert validate_connector_url(url) == url


@PROPERTY
@given(url_candidates | any_value)
def test_any_connector_url_is_accepted_or_refused_naming_the_field(value):
    url, error = outcome(lambda: validate_connector_url(value), Invalid)
    if error is not None:
        assert error.field == "connector"
    else:
        assert url == value


@PROPERTY
@given(url_candidates)
@example("http://\u00e9.example")
@example("http://a\x00b")
def test_an_accepted_connector_url_is_one_the_connector_client_can_send(value):
    # The client hands the URL to curl as it is: a non-ASCII character there raises
    # UnicodeEncodeError and NUL raises ValueError, inside the reconciler (neither a
    # ConnectorFailure), so such a URL must be refused when the compute is written.
    url, error = outcome(lambda: validate_connector_url(value), Invalid)
    if error is None:
        assert url.isascii() and url.isprintable() and " " not in url, url


@st.composite
def flawed_urls(draw):
    """A well-formed URL with exactly one thing wrong with it."""
    url = draw(connector_urls())
    scheme, rest = url.split("://", 1)
    host_end = len(rest.split("/", 1)[0])
    flaw = draw(st.sampled_from(["scheme", "credentials", "query", "fragment", "port 0",
                                 "bad port", "no host", "space", "too long"]))
    if flaw == "scheme":
        return draw(st.sampled_from(["ftp", "file", "ws", "htp", "", "http+unix"])) \
            + "://" + rest
    if flaw == "credentials":
        userinfo = draw(st.sampled_from(["user@", "user:secret@", ":secret@", "@"]))
        return "%s://%s%s" % (scheme, userinfo, rest)
    if flaw == "query":
        return url + "?" + draw(st.text(st.characters(codec="ascii", categories=["L", "N"]),
                                        min_size=1))
    if flaw == "fragment":
        return url + "#" + draw(st.text(st.characters(codec="ascii", categories=["L", "N"]),
                                        min_size=1))
    host = rest[:host_end]
    if host.endswith("]") or ":" not in host:
        hostname = host
    else:
        hostname = host.rsplit(":", 1)[0]
    path = rest[host_end:]
    if flaw == "port 0":
        return "%s://%s:%s%s" % (scheme, hostname, draw(st.sampled_from(["0", "00"])), path)
    if flaw == "bad port":
        port = draw(st.sampled_from(["65536", "99999", "-1", "x", "8o", "\u0668\u0660"]))
        return "%s://%s:%s%s" % (scheme, hostname, port, path)
    if flaw == "no host":
        return "%s://%s" % (scheme, draw(st.sampled_from(["", ":80", "/x", ":80/x"])))
    if flaw == "space":
        at = draw(st.integers(0, len(url)))
        return url[:at] + draw(st.sampled_from([" ", "\t", "\n", "\r", "\u3000", "\x85"])) \
            + url[at:]
    return url + "/" + "a" * (2048 - len(url))  # "too long": 2049 characters


@PROPERTY
@given(flawed_urls())
def test_a_url_that_breaks_one_rule_is_refused(url):
    _, error = outcome(lambda: validate_connector_url(url), Invalid)
    assert error is not None and error.field == "connector"
