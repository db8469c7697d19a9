"""Image reference parsing and normalisation.

The tables below are ported from distribution/reference's own tests (reference_test.go,
normalize_test.go, regexp_test.go), which define docker's behaviour."""

from __future__ import annotations

import time

import pytest

from dockyard.image import reference as R
from dockyard.image.reference import InvalidReference, Reference

F64 = "f" * 64
SHA_F = "sha256:" + F64
EMPTY = "repository name must have at least one component"
FORMAT = "invalid reference format"
UPPER = "repository name must be lowercase"
TOO_LONG = "repository name must not be more than 255 characters"

# input, name, domain, tag, digest  (TestReferenceParse; Parse does not normalise)
PARSE_OK = [
    ("test_com", "test_com", "", None, None),
    ("test.com:tag", "test.com", "", "tag", None),
    ("test.com:5000", "test.com", "", "5000", None),
    ("test.com/repo:tag", "test.com/repo", "test.com", "tag", None),
    ("test:5000/repo", "test:5000/repo", "test:5000", None, None),
    ("test:5000/repo:tag", "test:5000/repo", "test:5000", "tag", None),
    (f"test:5000/repo@{SHA_F}", "test:5000/repo", "test:5000", None, SHA_F),
    (f"test:5000/repo:tag@{SHA_F}", "test:5000/repo", "test:5000", "tag", SHA_F),
    ("lowercase:Uppercase", "lowercase", "", "Uppercase", None),
    ("a/" * 127 + "a:tag-puts-this-over-max", "a/" * 127 + "a", "a", "tag-puts-this-over-max", None),
    ("sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com", None, None),
    ("sub-dom1.foo.com/bar/baz/quux:some-long-tag", "sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com",
     "some-long-tag", None),
    ("b.gcr.io/test.example.com/my-app:test.example.com", "b.gcr.io/test.example.com/my-app", "b.gcr.io",
     "test.example.com", None),
    ("xn--n3h.com/myimage:xn--n3h.com", "xn--n3h.com/myimage", "xn--n3h.com", "xn--n3h.com", None),
    (f"xn--7o8h.com/myimage:xn--7o8h.com@{SHA_F}", "xn--7o8h.com/myimage", "xn--7o8h.com", "xn--7o8h.com",
     SHA_F),
    ("foo_bar.com:8080", "foo_bar.com", "", "8080", None),
    ("foo/foo_bar.com:8080", "foo/foo_bar.com", "foo", "8080", None),
    ("192.168.1.1", "192.168.1.1", "", None, None),
    ("192.168.1.1:tag", "192.168.1.1", "", "tag", None),
    ("192.168.1.1:5000", "192.168.1.1", "", "5000", None),
    ("192.168.1.1/repo", "192.168.1.1/repo", "192.168.1.1", None, None),
    ("192.168.1.1:5000/repo", "192.168.1.1:5000/repo", "192.168.1.1:5000", None, None),
    ("192.168.1.1:5000/repo:5050", "192.168.1.1:5000/repo", "192.168.1.1:5000", "5050", None),
    ("[2001:db8::1]/repo", "[2001:db8::1]/repo", "[2001:db8::1]", None, None),
    ("[2001:db8:1:2:3:4:5:6]/repo:tag", "[2001:db8:1:2:3:4:5:6]/repo", "[2001:db8:1:2:3:4:5:6]", "tag", None),
    ("[2001:db8::1]:5000/repo", "[2001:db8::1]:5000/repo", "[2001:db8::1]:5000", None, None),
    ("[2001:db8::1]:5000/repo:tag", "[2001:db8::1]:5000/repo", "[2001:db8::1]:5000", "tag", None),
    (f"[2001:db8::1]:5000/repo@{SHA_F}", "[2001:db8::1]:5000/repo", "[2001:db8::1]:5000", None, SHA_F),
    (f"[2001:db8::1]:5000/repo:tag@{SHA_F}", "[2001:db8::1]:5000/repo", "[2001:db8::1]:5000", "tag", SHA_F),
    ("[2001:db8::]:5000/repo", "[2001:db8::]:5000/repo", "[2001:db8::]:5000", None, None),
    ("[::1]:5000/repo", "[::1]:5000/repo", "[::1]:5000", None, None),
    ("example.com/" + "a" * 255 + ":tag", "example.com/" + "a" * 255, "example.com", "tag", None),
]

PARSE_ERR = [
    ("", EMPTY),
    (":justtag", FORMAT),
    (f"@{SHA_F}", FORMAT),
    ("repo@sha256:" + "f" * 34, "invalid checksum digest length"),
    (f"validname@invaliddigest:{F64}", "unsupported digest algorithm"),
    ("Uppercase:tag", UPPER),
    ("test:5000/Uppercase/lowercase:tag", UPPER),
    ("domain/" + "a" * 256 + ":tag", TOO_LONG),
    ("aa/asdf$$^/aa", FORMAT),
    ("[2001:db8::1]", FORMAT),
    ("[2001:db8::1]:5000", FORMAT),
    ("[2001:db8::1]:tag", FORMAT),
    ("[fe80::1%eth0]:5000/repo", FORMAT),
    ("[fe80::1%@invalidzone]:5000/repo", FORMAT),
    # not in distribution's table: a trailing newline must not slip through the anchors
    ("busybox\n", FORMAT),
    ("repo@sha256:" + "F" * 64, "invalid checksum digest format"),
]


@pytest.mark.parametrize("text,name,domain,tag,digest", PARSE_OK)
def test_parse(text: str, name: str, domain: str, tag: str | None, digest: str | None) -> None:
    ref = R.parse(text)
    assert str(ref) == text
    assert (ref.name, ref.domain, ref.tag, ref.digest) == (name, domain, tag, digest)


@pytest.mark.parametrize("text,message", PARSE_ERR)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidReference) as err:
        R.parse(text)
    assert str(err.value) == message


def test_sha512_digest_is_accepted() -> None:
    # distribution's own table rejects sha512 only because its test binary does not register it;
    # dockyard's digest module accepts sha512, as dockerd does.
    ref = R.parse("validname@sha512:" + "f" * 128)
    assert ref.digest == "sha512:" + "f" * 128


@pytest.mark.parametrize("text,message", [
    ("", FORMAT), (":justtag", FORMAT), (f"@{SHA_F}", FORMAT), (f"validname@invaliddigest:{F64}", FORMAT),
    ("example.com/repo:tag", FORMAT), ("example.com/" + "a" * 256, TOO_LONG), ("aa/asdf$$^/aa", FORMAT),
])
def test_with_name_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidReference, match=f"^{message}$"):
        R.with_name(text)


@pytest.mark.parametrize("text,domain,path", [
    ("test.com/foo", "test.com", "foo"),
    ("test_com/foo", "", "test_com/foo"),
    ("test:8080/foo", "test:8080", "foo"),
    ("test.com:8080/foo", "test.com:8080", "foo"),
    ("test-com:8080/foo", "test-com:8080", "foo"),
    ("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo"),
])
def test_with_name_domain_and_path(text: str, domain: str, path: str) -> None:
    ref = R.with_name(text)
    assert (ref.domain, ref.path) == (domain, path)


# TestFullNameRegexp: input → (domain, path) or None when it must not match
FULL_NAMES = [
    ("", None), ("short", ("", "short")), ("simple/name", ("simple", "name")),
    ("library/ubuntu", ("library", "ubuntu")), ("docker/stevvooe/app", ("docker", "stevvooe/app")),
    ("aa/aa/aa/aa/aa/aa/aa/aa/aa/bb/bb/bb/bb/bb/bb", ("aa", "aa/aa/aa/aa/aa/aa/aa/aa/bb/bb/bb/bb/bb/bb")),
    ("aa/aa/bb/bb/bb", ("aa", "aa/bb/bb/bb")), ("a/a/a/a", ("a", "a/a/a")), ("a/a/a/a/", None),
    ("a//a/a", None), ("a", ("", "a")), ("a/aa", ("a", "aa")), ("a/aa/a", ("a", "aa/a")),
    ("foo.com", ("", "foo.com")), ("foo.com/", None), ("foo.com:8080/bar", ("foo.com:8080", "bar")),
    ("foo.com:http/bar", None), ("foo.com/bar", ("foo.com", "bar")), ("foo.com/bar/baz", ("foo.com", "bar/baz")),
    ("localhost:8080/bar", ("localhost:8080", "bar")),
    ("sub-dom1.foo.com/bar/baz/quux", ("sub-dom1.foo.com", "bar/baz/quux")),
    ("blog.foo.com/bar/baz", ("blog.foo.com", "bar/baz")), ("a^a", None), ("aa/asdf$$^/aa", None),
    ("asdf$$^/aa", None), ("aa-a/a", ("aa-a", "a")), ("a/" * 128 + "a", ("a", "a/" * 127 + "a")),
    ("a-/a/a/a", None), ("foo.com/a-/a/a", None), ("-foo/bar", None), ("foo/bar-", None), ("foo-/bar", None),
    ("foo/-bar", None), ("_foo/bar", None), ("foo_bar", ("", "foo_bar")), ("foo_bar.com", ("", "foo_bar.com")),
    ("foo_bar.com:8080", None), ("foo_bar.com:8080/app", None), ("foo.com/foo_bar", ("foo.com", "foo_bar")),
    ("____/____", None), ("_docker/_docker", None), ("docker_/docker_", None),
    ("b.gcr.io/test.example.com/my-app", ("b.gcr.io", "test.example.com/my-app")),
    ("xn--n3h.com/myimage", ("xn--n3h.com", "myimage")), ("xn--7o8h.com/myimage", ("xn--7o8h.com", "myimage")),
    ("example.com/xn--7o8h.com/myimage", ("example.com", "xn--7o8h.com/myimage")),
    ("example.com/some_separator__underscore/myimage", ("example.com", "some_separator__underscore/myimage")),
    ("example.com/__underscore/myimage", None), ("example.com/..dots/myimage", None),
    ("example.com/.dots/myimage", None), ("example.com/nodouble..dots/myimage", None), ("docker./docker", None),
    (".docker/docker", None), ("docker-/docker", None), ("-docker/docker", None), ("do..cker/docker", None),
    ("do__cker:8080/docker", None), ("do__cker/docker", ("", "do__cker/docker")),
    ("registry.io/foo/project--id.module--name.ver---sion--name",
     ("registry.io", "foo/project--id.module--name.ver---sion--name")),
    ("Asdf.com/foo/bar", ("Asdf.com", "foo/bar")), ("Foo/FarB", None),
]


@pytest.mark.parametrize("text,expected", FULL_NAMES)
def test_full_name_grammar(text: str, expected: tuple[str, str] | None) -> None:
    if expected is None:
        with pytest.raises(InvalidReference):
            R.with_name(text)
    else:
        ref = R.with_name(text)
        assert (ref.domain, ref.path) == expected


DIGEST_B = "sha256:be178c0543eb17f5f3043021c9e5fcf30285e557a4fc309cce97ff9ca6182912"


@pytest.mark.parametrize("text,expected", [
    ("registry.com:8080/myapp:tag", ("registry.com:8080/myapp", "tag", None)),
    (f"registry.com:8080/myapp@{DIGEST_B}", ("registry.com:8080/myapp", None, DIGEST_B)),
    (f"registry.com:8080/myapp:tag2@{DIGEST_B}", ("registry.com:8080/myapp", "tag2", DIGEST_B)),
    ("registry.com:8080/myapp@sha256:badbadbadbad", None),
    ("registry.com:8080/myapp:invalid~tag", None),
    ("bad_hostname.com:8080/myapp:tag", None),
    (f"localhost:8080@{DIGEST_B}", ("localhost", "8080", DIGEST_B)),
    (f"localhost:8080/name@{DIGEST_B}", ("localhost:8080/name", None, DIGEST_B)),
    (f"localhost:http/name@{DIGEST_B}", None),
    (f"localhost@{DIGEST_B}", ("localhost", None, DIGEST_B)),
    ("registry.com:8080/myapp@bad", None),
    ("registry.com:8080/myapp@2bad", None),
])
def test_reference_grammar(text: str, expected: tuple[str, str | None, str | None] | None) -> None:
    if expected is None:
        with pytest.raises(InvalidReference):
            R.parse(text)
    else:
        ref = R.parse(text)
        assert (ref.name, ref.tag, ref.digest) == expected


DIGEST_W = "sha256:" + "12345678900987654321123456678900987654321123456678900987654321ab"


@pytest.mark.parametrize("name,digest,tag,combined", [
    ("test.com/foo", None, "tag", "test.com/foo:tag"),
    ("foo", None, "tag2", "foo:tag2"),
    ("test.com:8000/foo", None, "tag4", "test.com:8000/foo:tag4"),
    ("test.com:8000/foo", None, "TAG5", "test.com:8000/foo:TAG5"),
    # distribution uses a short fake digest here; dockyard validates digests fully
    ("test.com:8000/foo", DIGEST_W, "TAG5", f"test.com:8000/foo:TAG5@{DIGEST_W}"),
])
def test_with_tag(name: str, digest: str | None, tag: str, combined: str) -> None:
    ref = R.with_name(name)
    if digest:
        ref = ref.with_digest(digest)
    assert str(ref.with_tag(tag)) == combined


@pytest.mark.parametrize("name,tag,combined", [
    ("test.com/foo", None, f"test.com/foo@{DIGEST_W}"),
    ("foo", None, f"foo@{DIGEST_W}"),
    ("test.com:8000/foo", None, f"test.com:8000/foo@{DIGEST_W}"),
    ("test.com:8000/foo", "latest", f"test.com:8000/foo:latest@{DIGEST_W}"),
])
def test_with_digest(name: str, tag: str | None, combined: str) -> None:
    ref = R.with_name(name)
    if tag:
        ref = ref.with_tag(tag)
    assert str(ref.with_digest(DIGEST_W)) == combined


def test_invalid_components() -> None:
    with pytest.raises(InvalidReference):
        R.parse_normalized("-foo")
    ref = R.parse_normalized("busybox")
    with pytest.raises(InvalidReference, match="^invalid tag format$"):
        ref.with_tag("-foo")
    with pytest.raises(InvalidReference, match="^invalid digest format$"):
        ref.with_digest("foo")
    with pytest.raises(InvalidReference, match="^invalid tag format$"):
        ref.with_tag("a" * 129)
    assert ref.with_tag("a" * 128).tag == "a" * 128


@pytest.mark.parametrize("text,domain,path", [
    ("test.com/foo", "test.com", "foo"),
    ("test:8080/foo", "test:8080", "foo"),
    ("docker.io/library/foo", "docker.io", "library/foo"),
])
def test_parse_named(text: str, domain: str, path: str) -> None:
    ref = R.parse_named(text)
    assert (ref.domain, ref.path) == (domain, path)


@pytest.mark.parametrize("text", ["test_com/foo", "test.com", "foo", "library/foo", "docker.io/foo"])
def test_parse_named_not_canonical(text: str) -> None:
    with pytest.raises(InvalidReference, match="^repository name must be canonical$"):
        R.parse_named(text)


VALID_NORMALIZED = [
    "docker/docker", "library/debian", "debian", "localhost/library/debian", "localhost/debian",
    "LOCALDOMAIN/library/debian", "LOCALDOMAIN/debian", "docker.io/docker/docker", "docker.io/library/debian",
    "docker.io/debian", "index.docker.io/docker/docker", "index.docker.io/library/debian",
    "index.docker.io/debian", "127.0.0.1:5000/docker/docker", "127.0.0.1:5000/library/debian",
    "127.0.0.1:5000/debian", "192.168.0.1", "192.168.0.1:80", "192.168.0.1:8/debian",
    "192.168.0.2:25000/debian", "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
    "[fc00::1]:5000/docker", "[fc00::1]:5000/docker/docker", "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
    "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a", "Docker/docker",
    "DOCKER/docker", "docker-rules/docker", "docker---rules/docker", "doc/docker", "d/docker", "jess/t",
    "dock__er/docker",
]
INVALID_NORMALIZED = [
    "https://github.com/docker/docker", "docker/Docker", "-docker", "-docker/docker", "-docker.io/docker/docker",
    "docker///docker", "docker.io/docker/Docker", "docker.io/docker///docker", "[fc00::1]", "[fc00::1]:5000",
    "fc00::1:5000/debian", "[fe80::1%eth0]:5000/debian", "[2001:db8:3:4::192.0.2.33]:5000/debian",
    "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a", "docker-/docker", "-docker-/docker",
    "____/____", "_docker/_docker", "dock..er/docker", "dock_.er/docker", "dock-.er/docker", "docker/",
    "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_" * 4 + "/docker",
]


@pytest.mark.parametrize("text", VALID_NORMALIZED)
def test_valid_normalized_names(text: str) -> None:
    R.parse_normalized(text)


@pytest.mark.parametrize("text", INVALID_NORMALIZED)
def test_invalid_normalized_names(text: str) -> None:
    with pytest.raises(InvalidReference):
        R.parse_normalized(text)


# TestParseRepositoryInfo: remote name, familiar, full, ambiguous spelling ("" = none), domain
REPOSITORY_INFO = [
    ("fooo", "localhost/fooo", "localhost/fooo", "localhost/fooo", "localhost"),
    ("fooo/bar", "localhost/fooo/bar", "localhost/fooo/bar", "localhost/fooo/bar", "localhost"),
    ("fooo", "LOCALDOMAIN/fooo", "LOCALDOMAIN/fooo", "LOCALDOMAIN/fooo", "LOCALDOMAIN"),
    ("fooo/bar", "LOCALDOMAIN/fooo/bar", "LOCALDOMAIN/fooo/bar", "LOCALDOMAIN/fooo/bar", "LOCALDOMAIN"),
    ("fooo/bar", "fooo/bar", "docker.io/fooo/bar", "index.docker.io/fooo/bar", "docker.io"),
    ("library/ubuntu", "ubuntu", "docker.io/library/ubuntu", "library/ubuntu", "docker.io"),
    ("nonlibrary/ubuntu", "nonlibrary/ubuntu", "docker.io/nonlibrary/ubuntu", "", "docker.io"),
    ("other/library", "other/library", "docker.io/other/library", "", "docker.io"),
    ("private/moonbase", "127.0.0.1:8000/private/moonbase", "127.0.0.1:8000/private/moonbase", "",
     "127.0.0.1:8000"),
    ("privatebase", "127.0.0.1:8000/privatebase", "127.0.0.1:8000/privatebase", "", "127.0.0.1:8000"),
    ("private/moonbase", "example.com/private/moonbase", "example.com/private/moonbase", "", "example.com"),
    ("privatebase", "example.com/privatebase", "example.com/privatebase", "", "example.com"),
    ("private/moonbase", "example.com:8000/private/moonbase", "example.com:8000/private/moonbase", "",
     "example.com:8000"),
    ("privatebasee", "example.com:8000/privatebasee", "example.com:8000/privatebasee", "", "example.com:8000"),
    ("library/ubuntu-12.04-base", "ubuntu-12.04-base", "docker.io/library/ubuntu-12.04-base",
     "index.docker.io/library/ubuntu-12.04-base", "docker.io"),
    ("library/foo", "foo", "docker.io/library/foo", "docker.io/foo", "docker.io"),
    ("library/foo/bar", "library/foo/bar", "docker.io/library/foo/bar", "", "docker.io"),
    ("store/foo/bar", "store/foo/bar", "docker.io/store/foo/bar", "", "docker.io"),
    ("bar", "Foo/bar", "Foo/bar", "", "Foo"),
    ("bar", "FOO/bar", "FOO/bar", "", "FOO"),
]


@pytest.mark.parametrize("remote,familiar,full,ambiguous,domain", REPOSITORY_INFO)
def test_repository_info(remote: str, familiar: str, full: str, ambiguous: str, domain: str) -> None:
    for spelling in filter(None, (familiar, full, ambiguous)):
        ref = R.parse_normalized(spelling)
        assert ref.familiar_name() == familiar
        assert str(ref) == full
        assert ref.domain == domain
        assert ref.path == remote


def test_tag_and_digest_familiar() -> None:
    short = "busybox:latest@sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa"
    ref = R.parse_normalized(short)
    assert str(ref) == "docker.io/library/" + short
    assert ref.tag == "latest" and ref.digest is not None
    assert ref.familiar() == short


REDIS_D = "sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c"


@pytest.mark.parametrize("text,equivalent", [
    ("redis", "docker.io/library/redis"),
    ("redis:latest", "docker.io/library/redis:latest"),
    ("docker.io/library/redis:latest", "docker.io/library/redis:latest"),
    (f"redis@{REDIS_D}", f"docker.io/library/redis@{REDIS_D}"),
    (f"docker.io/library/redis@{REDIS_D}", f"docker.io/library/redis@{REDIS_D}"),
    ("dmcgowan/myapp", "docker.io/dmcgowan/myapp"),
    ("dmcgowan/myapp:latest", "docker.io/dmcgowan/myapp:latest"),
    ("docker.io/mcgowan/myapp:latest", "docker.io/mcgowan/myapp:latest"),
    (f"dmcgowan/myapp@{REDIS_D}", f"docker.io/dmcgowan/myapp@{REDIS_D}"),
    (f"docker.io/dmcgowan/myapp@{REDIS_D}", f"docker.io/dmcgowan/myapp@{REDIS_D}"),
    (REDIS_D.removeprefix("sha256:"), REDIS_D),
    (REDIS_D, REDIS_D),
    (REDIS_D.removeprefix("sha256:")[:-1], "docker.io/library/" + REDIS_D.removeprefix("sha256:")[:-1]),
    ("dbcc1", "docker.io/library/dbcc1"),
])
def test_parse_any(text: str, equivalent: str) -> None:
    ref = R.parse_any(text)
    assert str(ref) == equivalent
    if equivalent.startswith("sha256:"):
        assert ref == Reference(digest=equivalent)
        assert ref.familiar() == equivalent
    else:
        assert ref == R.parse(equivalent)


@pytest.mark.parametrize("text,domain,path", [
    ("test.com/foo", "test.com", "foo"),
    ("test_com/foo", "docker.io", "test_com/foo"),
    ("docker/migrator", "docker.io", "docker/migrator"),
    ("test.com:8080/foo", "test.com:8080", "foo"),
    ("test-com:8080/foo", "test-com:8080", "foo"),
    ("foo", "docker.io", "library/foo"),
    ("xn--n3h.com/foo", "xn--n3h.com", "foo"),
    ("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo"),
    ("docker.io/foo", "docker.io", "library/foo"),
    ("docker.io/library/foo", "docker.io", "library/foo"),
    ("docker.io/library/foo/bar", "docker.io", "library/foo/bar"),
])
def test_normalized_split(text: str, domain: str, path: str) -> None:
    ref = R.parse_normalized(text)
    assert (ref.domain, ref.path) == (domain, path)


E66 = "sha256:e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582"


@pytest.mark.parametrize("text,expected", [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:latest", "docker.io/library/busybox:latest"),
    (f"busybox@{E66}", f"docker.io/library/busybox@{E66}"),
    ("library/busybox", "docker.io/library/busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest"),
    ("docker.io/library/busybox", "docker.io/library/busybox:latest"),
    ("docker.io/busybox:latest", "docker.io/library/busybox:latest"),
    ("library/busybox:latest", "docker.io/library/busybox:latest"),
    ("docker.io/library/busybox:latest", "docker.io/library/busybox:latest"),
    ("gcr.io/library/busybox", "gcr.io/library/busybox:latest"),
    (f"gcr.io/library/busybox:latest@{E66}", f"gcr.io/library/busybox@{E66}"),
])
def test_parse_docker_ref(text: str, expected: str) -> None:
    out = R.parse_docker_ref(text)
    assert str(out) == expected
    assert R.parse(expected) == out


# dockyard's own normalisation cases (docker's CLI behaviour)
@pytest.mark.parametrize("text,full,familiar", [
    ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("library/busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
    ("index.docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("localhost:5000/a/b:t", "localhost:5000/a/b:t", "localhost:5000/a/b:t"),
    ("localhost/x", "localhost/x:latest", "localhost/x:latest"),
    ("127.0.0.1:5000/busybox", "127.0.0.1:5000/busybox:latest", "127.0.0.1:5000/busybox:latest"),
    ("ghcr.io/org/app", "ghcr.io/org/app:latest", "ghcr.io/org/app:latest"),
    ("user/app", "docker.io/user/app:latest", "user/app:latest"),
    (f"busybox@{E66}", f"docker.io/library/busybox@{E66}", f"busybox@{E66}"),
    (f"busybox:1@{E66}", f"docker.io/library/busybox:1@{E66}", f"busybox:1@{E66}"),
])
def test_normalisation(text: str, full: str, familiar: str) -> None:
    ref = R.with_default_tag(R.parse_normalized(text))
    assert str(ref) == full
    assert ref.familiar() == familiar


def test_with_default_tag_keeps_digest_and_tag() -> None:
    digested = R.parse_normalized(f"busybox@{E66}")
    assert R.with_default_tag(digested) is digested
    tagged = R.parse_normalized("busybox:1")
    assert R.with_default_tag(tagged).tag == "1"
    assert R.with_default_tag(R.parse_normalized("busybox")).tag == "latest"


@pytest.mark.parametrize("text,message", [
    ("Busybox", "invalid reference format: repository name (library/Busybox) must be lowercase"),
    ("docker.io/Library/busybox", "invalid reference format: repository name (Library/busybox) must be lowercase"),
    ("localhost:5000/A:tag", "invalid reference format: repository name (A) must be lowercase"),
    ("busybox:-bad", FORMAT),
    ("", FORMAT),  # normalising first gives "docker.io/library/", which the grammar rejects
    ("busy box", FORMAT),
    (F64, f"invalid repository name ({F64}), cannot specify 64-byte hexadecimal strings"),
    ("x/" + "a" * 254, TOO_LONG),
])
def test_normalized_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidReference) as err:
        R.parse_normalized(text)
    assert str(err.value) == message


def test_name_length_limit_counts_path_only() -> None:
    ok = "a" * 255
    assert R.parse_normalized("example.com/" + ok).path == ok
    # docker.io/library/ counts: the path becomes library/<name>
    assert R.parse_normalized("a" * 247).path == "library/" + "a" * 247
    with pytest.raises(InvalidReference, match=TOO_LONG):
        R.parse_normalized("a" * 248)


@pytest.mark.parametrize("text,domain,remainder", [
    ("busybox", "docker.io", "library/busybox"),
    ("busybox:1", "docker.io", "library/busybox:1"),
    ("docker.io/busybox", "docker.io", "library/busybox"),
    ("index.docker.io/user/x", "docker.io", "user/x"),
    ("localhost/x", "localhost", "x"),
    ("host:5000/x:t", "host:5000", "x:t"),
    ("Registry/x", "Registry", "x"),
    ("user/x", "docker.io", "user/x"),
])
def test_domain_and_remainder(text: str, domain: str, remainder: str) -> None:
    assert R.domain_and_remainder(text) == (domain, remainder)


def test_trim_and_name_only() -> None:
    ref = R.parse_normalized(f"busybox:1@{E66}")
    assert str(ref.trim()) == "docker.io/library/busybox"
    assert ref.trim().is_name_only and not ref.is_name_only


def test_pathological_input_is_fast() -> None:
    start = time.monotonic()
    for text in ("a" * 5000 + "!", "a-" * 3000 + "!", "a." * 3000 + "/!", "a/" * 3000 + "A"):
        with pytest.raises(InvalidReference):
            R.parse_normalized(text)
    assert time.monotonic() - start < 2
