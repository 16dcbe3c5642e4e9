"""The rules of genisys.auth, one by one: which headers identify which token, what each
role may do, which tokens a configuration may hold.

Written to kill what a mutation run of ``genisys.auth`` left alive (a scheme other than
Bearer let in, secrets compared without regard to case, the boundaries of every check).
The HTTP behaviour over a real server is in tests/api/test_auth.py."""

import os

import pytest

from genisys.auth import (
    ADMIN,
    MIN_SECRET_LENGTH,
    READ_ONLY,
    Authenticator,
    Token,
    check_unique,
    load_tokens_file,
    tokens_from_environment,
    validate_token,
)
from genisys.errors import ConfigError, Forbidden, Unauthenticated

ADMIN_TOKEN = Token("ops", "Admin-Secret-0123456789", ADMIN)
READER_TOKEN = Token("dashboard", "reader-secret-0123456789", READ_ONLY)
LAST_TOKEN = Token("last", "last-secret-abcdefghij", ADMIN)
AUTH = Authenticator([ADMIN_TOKEN, READER_TOKEN, LAST_TOKEN])


def refusal(header):
    with pytest.raises(Unauthenticated) as caught:
        AUTH.identify(header)
    assert caught.value.field == "Authorization"
    return caught.value.message


@pytest.mark.parametrize("header, token", [
    ("Bearer Admin-Secret-0123456789", ADMIN_TOKEN),
    ("bearer Admin-Secret-0123456789", ADMIN_TOKEN),
    ("BEARER reader-secret-0123456789", READER_TOKEN),
    ("  Bearer last-secret-abcdefghij  ", LAST_TOKEN),
    ("Bearer  last-secret-abcdefghij", LAST_TOKEN),
])
def test_each_secret_identifies_its_own_token(header, token):
    assert AUTH.identify(header) is token


def test_no_header_asks_for_a_bearer_token():
    for header in (None, ""):
        assert refusal(header) == ("this request needs a token: "
                                   "Authorization: Bearer <token>")


@pytest.mark.parametrize("header", [
    "Basic Admin-Secret-0123456789",
    "Token Admin-Secret-0123456789",
    "BearerX Admin-Secret-0123456789",
    "Admin-Secret-0123456789",
    "Bearer",
    "Bearer    ",
    "   ",
])
def test_only_the_bearer_scheme_with_credentials_is_accepted(header):
    assert refusal(header) == "the Authorization header must be 'Bearer <token>'"


@pytest.mark.parametrize("secret", [
    "admin-secret-0123456789",  # the admin secret in another case
    "ADMIN-SECRET-0123456789",
    "Admin-Secret-012345678",  # one character short
    "Admin-Secret-01234567890",  # one character more
    "Admin-Secret-0123456789 reader-secret-0123456789",
])
def test_a_secret_must_match_exactly(secret):
    assert refusal("Bearer " + secret) == "the token is not valid"


def test_a_header_that_no_secret_could_be_is_not_valid_and_no_crash():
    # Lone surrogates cannot be encoded as UTF-8: the digest is taken of a replacement.
    assert refusal("Bearer \udcff\udcfe-secret-0123456789") == "the token is not valid"


def test_without_tokens_authentication_is_disabled_and_with_them_enabled():
    assert Authenticator().enabled is False
    assert Authenticator([READER_TOKEN]).enabled is True
    with pytest.raises(Unauthenticated):
        Authenticator().identify("Bearer reader-secret-0123456789")


@pytest.mark.parametrize("method", ["GET", "get", "HEAD", "OPTIONS"])
def test_a_reader_may_read(method):
    assert READER_TOKEN.may(method) is True
    Authenticator.authorize(READER_TOKEN, method, "/service")


@pytest.mark.parametrize("method", ["POST", "put", "DELETE", "Patch"])
def test_a_reader_may_not_write_and_an_admin_may(method):
    assert READER_TOKEN.may(method) is False
    with pytest.raises(Forbidden) as caught:
        Authenticator.authorize(READER_TOKEN, method, "/service/web")
    assert caught.value.message == ("token 'dashboard' is read-only: %s /service/web needs an "
                                    "admin token" % method)
    assert ADMIN_TOKEN.may(method) is True
    Authenticator.authorize(ADMIN_TOKEN, method, "/service/web")


def test_a_token_is_an_admin_unless_told_otherwise():
    assert Token("t", "s" * MIN_SECRET_LENGTH).role == ADMIN
    assert "s" * MIN_SECRET_LENGTH not in repr(Token("t", "s" * MIN_SECRET_LENGTH))


# -- validation of configured tokens -----------------------------------------------------


def config_error(call, *args, **kwargs):
    with pytest.raises(ConfigError) as caught:
        call(*args, **kwargs)
    return caught.value


def test_the_shortest_secret_and_name_and_the_longest_name_are_accepted():
    assert MIN_SECRET_LENGTH == 16
    token = validate_token("a", "x" * 16, READ_ONLY, "here")
    assert token == Token("a", "x" * 16, READ_ONLY)
    assert validate_token("a" + "b.c_d-" * 10 + "ef", "!" + "~" * 15, ADMIN, "here").name \
        == "a" + "b.c_d-" * 10 + "ef"


@pytest.mark.parametrize("name, secret, role, message", [
    ("", "x" * 16, ADMIN, "here.name: must be 1 to 63 letters, digits, '.', '_' or '-', "
                          "got ''"),
    ("-a", "x" * 16, ADMIN, "here.name: must be 1 to 63"),
    ("a" * 64, "x" * 16, ADMIN, "here.name: must be 1 to 63"),
    ("a b", "x" * 16, ADMIN, "here.name: must be 1 to 63"),
    (7, "x" * 16, ADMIN, "here.name: must be 1 to 63 letters, digits, '.', '_' or '-', got 7"),
    ("a", "x" * 15, ADMIN, "here.token: must be at least 16 characters long, got 15"),
    ("a", "x" * 15 + " ", ADMIN, "here.token: must be a string of visible ASCII characters"),
    ("a", "x" * 15 + "\u00e9", ADMIN, "here.token: must be a string of visible ASCII"),
    ("a", "", ADMIN, "here.token: must be a string of visible ASCII characters"),
    ("a", 1234567890123456789, ADMIN, "here.token: must be a string of visible ASCII"),
    ("a", "x" * 16, "root", "here.role: must be one of admin, read-only, got 'root'"),
    ("a", "x" * 16, None, "here.role: must be one of admin, read-only, got None"),
])
def test_a_bad_token_is_refused_naming_what_is_wrong(name, secret, role, message):
    error = config_error(validate_token, name, secret, role, "here")
    assert error.field == "auth"
    assert error.message.startswith(message), error.message


def test_tokens_from_the_environment_are_admins_named_after_the_variable():
    assert tokens_from_environment("s" * 16) == [Token("env", "s" * 16, ADMIN)]
    tokens = tokens_from_environment(" %s , ,%s," % ("a" * 16, "b" * 16), name="ci")
    assert tokens == [Token("ci-1", "a" * 16, ADMIN), Token("ci-2", "b" * 16, ADMIN)]


def test_an_empty_environment_variable_or_a_short_secret_in_it_is_refused():
    error = config_error(tokens_from_environment, " , ", variable="MY_TOKEN")
    assert (error.message, error.field) == ("MY_TOKEN is set but empty", "auth")
    error = config_error(tokens_from_environment, "%s,short" % ("a" * 16))
    assert error.message == "GENISYS_TOKEN[1].token: must be at least 16 characters long, got 5"


def test_two_tokens_may_share_neither_a_name_nor_a_secret():
    one, two = Token("a", "x" * 16), Token("b", "y" * 16)
    assert check_unique([one, two]) == [one, two]
    error = config_error(check_unique, [one, Token("a", "z" * 16)])
    assert (error.message, error.field) == ("two tokens are named 'a'", "auth")
    error = config_error(check_unique, [one, two, Token("c", "y" * 16)])
    assert (error.message, error.field) == ("token 'c' has the same secret as another one",
                                            "auth")


def write(tmp_path, text, mode=0o600):
    path = tmp_path / "tokens.yml"
    path.write_text(text)
    os.chmod(path, mode)
    return str(path)


def test_a_tokens_file_gives_its_tokens_and_says_if_others_may_read_it(tmp_path):
    path = write(tmp_path, "- {name: ops, token: %s}\n- {name: dash, token: %s, role: read-only}\n"
                 % ("o" * 16, "d" * 16))
    assert load_tokens_file(path) == ([Token("ops", "o" * 16, ADMIN),
                                       Token("dash", "d" * 16, READ_ONLY)], False)
    for mode in (0o640, 0o604, 0o610, 0o601):
        os.chmod(path, mode)
        assert load_tokens_file(path)[1] is True, oct(mode)


@pytest.mark.parametrize("text, message", [
    ("[]\n", "the tokens file {path} must be a non-empty list of {{name, token, role}}"),
    ("{name: a}\n", "the tokens file {path} must be a non-empty list of {{name, token, role}}"),
    ("- just-a-name\n", "{path}: tokens[0]: must be a mapping with name, token and role"),
    ("- {name: a, token: %s, rol: admin}\n" % ("x" * 16), "{path}: tokens[0].rol: unknown field"),
    ("- {name: a, token: %s}\n- {token: %s}\n" % ("x" * 16, "y" * 16),
     "{path}: tokens[1].name: is required"),
    ("- {name: a}\n", "{path}: tokens[0].token: is required"),
])
def test_a_bad_tokens_file_is_refused_naming_the_entry(tmp_path, text, message):
    path = write(tmp_path, text)
    error = config_error(load_tokens_file, path)
    assert error.message == message.format(path=path)
    assert error.field in ("auth", "genisys.tokens_file")


def test_a_tokens_file_that_cannot_be_read_is_named_as_the_tokens_file(tmp_path):
    missing = str(tmp_path / "nope.yml")
    error = config_error(load_tokens_file, missing)
    assert (error.message, error.field) == (
        "cannot read the tokens file %s: No such file or directory" % missing,
        "genisys.tokens_file")


def test_a_tokens_file_that_is_not_yaml_is_refused_without_showing_a_secret(tmp_path):
    # An unquoted secret that starts with '*' is a YAML alias: the message must not name it.
    path = write(tmp_path, "- {name: a, token: *supersecretvalue123}\n")
    error = config_error(load_tokens_file, path)
    assert (error.message, error.field) == (
        "the tokens file %s is not valid YAML: found undefined alias ... (line 1, column 20)"
        % path, "genisys.tokens_file")


def test_a_bad_token_in_a_tokens_file_is_named_by_its_place(tmp_path):
    path = write(tmp_path, "- {name: a, token: %s}\n- {name: b, token: short}\n" % ("x" * 16))
    error = config_error(load_tokens_file, path)
    assert (error.message, error.field) == (
        "%s: tokens[1].token: must be at least 16 characters long, got 5" % path, "auth")


def test_a_tokens_file_gone_between_reading_and_stat_is_named(tmp_path, monkeypatch):
    """The file is read, then its mode looked at: if it vanishes or turns unreadable in
    between (no real file system does that on cue), the error still names it."""
    path = write(tmp_path, "- {name: a, token: %s}\n" % ("x" * 16))

    def stat(target, *args, **kwargs):
        raise PermissionError(13, "Permission denied", target)
    monkeypatch.setattr(os, "stat", stat)
    error = config_error(load_tokens_file, path)
    assert (error.message, error.field) == (
        "cannot read the tokens file %s: Permission denied" % path, "genisys.tokens_file")
