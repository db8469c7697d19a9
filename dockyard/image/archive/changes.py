"""Docker's ``--change`` instructions (docker import / commit): Dockerfile lines that edit an
image's run config. Accepted, as in moby's BuildFromConfig: CMD, ENTRYPOINT, ENV, EXPOSE,
HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR; anything else fails with
"<instruction> is not a valid change command". Values are expanded with the image's ENV
(``$VAR``, ``${VAR}``, ``${VAR:-word}``, ``${VAR:+word}``) where Dockerfiles expand them.
"""

from __future__ import annotations

import json
import posixpath
import re
import signal
from collections.abc import Callable
from typing import Any

SHELL = ["/bin/sh", "-c"]
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
          "h": 3_600_000_000_000}
_HEALTH_FLAGS = {"interval": "Interval", "timeout": "Timeout", "start-period": "StartPeriod",
                 "start-interval": "StartInterval", "retries": "Retries"}


class ChangeError(ValueError):
    """A change instruction Docker would refuse; the message is Docker's."""


def _field(config: dict[str, Any], name: str, empty: Any) -> Any:
    """config[name], set to the empty value first when missing or null (a Go config's nil)."""
    if config.get(name) is None:
        config[name] = empty
    return config[name]


# ---- words and expansion ---------------------------------------------------------------------


def _lookup(env: list[str], name: str) -> str | None:
    for item in reversed(env):
        key, _, value = item.partition("=")
        if key == name:
            return value
    return None


def _variable(text: str, i: int, env: list[str]) -> tuple[str, int]:
    """Expand the variable starting after the "$" at text[i]; (value, next index)."""
    if i < len(text) and text[i] == "{":
        end = text.find("}", i)
        if end < 0:
            raise ChangeError(f"missing '}}' in {text!r}")
        body = text[i + 1:end]
        name, op, word = re.match(r"([A-Za-z_][A-Za-z0-9_]*)(:[-+])?(.*)", body).groups() if re.match(
            r"[A-Za-z_]", body) else (body, None, "")
        value = _lookup(env, name)
        if op == ":-":
            value = value if value else expand(word, env)
        elif op == ":+":
            value = expand(word, env) if value else ""
        return value or "", end + 1
    match = re.match(r"[A-Za-z_][A-Za-z0-9_]*", text[i:])
    if not match:
        return "$", i
    return _lookup(env, match.group()) or "", i + match.end()


def _lex(text: str, env: list[str] | None, split: bool) -> list[str]:
    """Shell-like words of text: quotes removed, backslash escapes, variables expanded (when
    env is given); split on unquoted whitespace when split is true."""
    words: list[str] = []
    current: list[str] = []
    started = False
    i, quote = 0, ""
    while i < len(text):
        c = text[i]
        if quote == "'":
            if c == "'":
                quote = ""
            else:
                current.append(c)
        elif c == "\\" and i + 1 < len(text) and (quote != '"' or text[i + 1] in '"\\$'):
            current.append(text[i + 1])
            i += 1
        elif c == "$" and env is not None:
            value, i = _variable(text, i + 1, env)
            current.append(value)
            started = True
            continue
        elif c == quote:
            quote = ""
        elif not quote and c in "'\"":
            quote, started = c, True
        elif not quote and split and c.isspace():
            if current or started:
                words.append("".join(current))
            current, started = [], False
        else:
            current.append(c)
        i += 1
    if current or started:
        words.append("".join(current))
    return words


def expand(text: str, env: list[str]) -> str:
    """One word: quotes removed and variables expanded."""
    return "".join(_lex(text, env, split=False))


def _json_list(rest: str) -> list[str] | None:
    try:
        value = json.loads(rest)
    except ValueError:
        return None
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


def _name_values(instruction: str, rest: str, env: list[str]) -> list[tuple[str, str]]:
    """ENV / LABEL arguments: `k=v k2="v 2"` or the legacy `k value with spaces`."""
    words = _lex(rest, None, split=True)
    if not words:
        raise ChangeError(f"{instruction} requires at least one argument")
    if "=" not in words[0]:
        parts = rest.strip().split(None, 1)
        if len(parts) < 2:
            raise ChangeError(f"{instruction} must have two arguments")
        return [(parts[0], expand(parts[1], env))]
    pairs = []
    for item in re.findall(r"""(?:[^\s"'\\]|\\.|"(?:[^"\\]|\\.)*"|'[^']*')+""", rest):
        key, eq, value = item.partition("=")
        if not eq:
            raise ChangeError(f"Syntax error - can't find = in {expand(item, env)!r}. Must be of the form: name=value")
        pairs.append((expand(key, env), expand(value, env)))
    return pairs


# ---- instructions ----------------------------------------------------------------------------

def _command(rest: str) -> list[str]:
    parsed = _json_list(rest)
    return parsed if parsed is not None else [*SHELL, rest.strip()]


def _env(config: dict[str, Any], rest: str, state: dict[str, Any]) -> None:
    env = _field(config, "Env", [])
    for key, value in _name_values("ENV", rest, env):
        item = f"{key}={value}"
        for i, existing in enumerate(env):
            if existing.partition("=")[0] == key:
                env[i] = item
                break
        else:
            env.append(item)


def _label(config: dict[str, Any], rest: str, state: dict[str, Any]) -> None:
    labels = _field(config, "Labels", {})
    for key, value in _name_values("LABEL", rest, config.get("Env") or []):
        labels[key] = value


def _cmd(config: dict[str, Any], rest: str, state: dict[str, Any]) -> None:
    config["Cmd"] = _command(rest)
    state["cmd_set"] = True


def _entrypoint(config: dict[str, Any], rest: str, state: dict[str, Any]) -> None:
    parsed = _json_list(rest)
    config["Entrypoint"] = parsed if parsed is not None else ([*SHELL, rest.strip()] if rest.strip() else None)
    if not state.get("cmd_set"):  # as in a Dockerfile: a new ENTRYPOINT drops an inherited CMD
        config.pop("Cmd", None)


def _expose(config: dict[str, Any], rest: str, state: dict[str, Any]) -> None:
    words = _lex(rest, config.get("Env") or [], split=True)
    if not words:
        raise ChangeError("EXPOSE requires at least one argument")
    ports = _field(config, "ExposedPorts", {})
    for word in words:
        spec, _, proto = word.partition("/")
        proto = (proto or "tcp").lower()
        start, _, end = spec.partition("-")
        if not start.isdigit() or (end and not end.isdigit()) or int(end or start) < int(start):
            raise ChangeError(f"Invalid containerPort: {spec}")
        for port in range(int(start), int(end or start) + 1):
            ports[f"{port}/{proto}"] = {}


def _volume(config: dict[str, Any], rest: str, state: dict[str, Any]) -> None:
    names = _json_list(rest)
    if names is None:
        names = _lex(rest, config.get("Env") or [], split=True)
    if not names:
        raise ChangeError("VOLUME requires at least one argument")
    volumes = _field(config, "Volumes", {})
    for name in names:
        if not name.strip():
            raise ChangeError("VOLUME specified can not be an empty string")
        volumes[name.strip()] = {}


def _workdir(config: dict[str, Any], rest: str, state: dict[str, Any]) -> None:
    path = expand(rest.strip(), config.get("Env") or [])
    if not path:
        raise ChangeError("WORKDIR requires exactly one argument")
    config["WorkingDir"] = posixpath.normpath(posixpath.join(config.get("WorkingDir") or "/", path))


def _user(config: dict[str, Any], rest: str, state: dict[str, Any]) -> None:
    user = expand(rest.strip(), config.get("Env") or [])
    if not user:
        raise ChangeError("USER requires exactly one argument")
    config["User"] = user


def _onbuild(config: dict[str, Any], rest: str, state: dict[str, Any]) -> None:
    trigger = rest.strip()
    keyword = trigger.split(None, 1)[0].upper() if trigger else ""
    if not keyword:
        raise ChangeError("ONBUILD requires at least one argument")
    if keyword == "ONBUILD":
        raise ChangeError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if keyword in ("FROM", "MAINTAINER"):
        raise ChangeError(f"{keyword} isn't allowed as an ONBUILD trigger")
    _field(config, "OnBuild", []).append(trigger)


def _stopsignal(config: dict[str, Any], rest: str, state: dict[str, Any]) -> None:
    value = expand(rest.strip(), config.get("Env") or [])
    name = value.upper().removeprefix("SIG")
    if not (value.isdigit() and int(value) > 0) and f"SIG{name}" not in signal.Signals.__members__:
        raise ChangeError(f"Invalid signal: {value}")
    config["StopSignal"] = value


def parse_duration(text: str) -> int:
    """A Go duration ("1m30s", "500ms") in nanoseconds."""
    pos, total = 0, 0.0
    if text == "0":
        return 0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ChangeError(f'time: invalid duration "{text}"')
    return int(total)


def _split_word(text: str) -> tuple[str, str]:
    parts = text.split(None, 1)
    return (parts[0], parts[1] if len(parts) > 1 else "") if parts else ("", "")


def _healthcheck(config: dict[str, Any], rest: str, state: dict[str, Any]) -> None:
    check: dict[str, Any] = {}
    word, text = _split_word(rest)
    while word.startswith("--"):
        flag, _, value = word[2:].partition("=")
        if flag not in _HEALTH_FLAGS:
            raise ChangeError(f"Unknown flag: {flag}")
        if flag == "retries":
            if not value.isdigit():
                raise ChangeError(f'strconv.ParseInt: parsing "{value}": invalid syntax')
            amount = int(value)
        else:
            amount = parse_duration(value)
            if 0 < amount < 1_000_000:
                raise ChangeError(f'{_HEALTH_FLAGS[flag]} "--{flag}" cannot be less than 1ms')
        if amount:
            check[_HEALTH_FLAGS[flag]] = amount
        word, text = _split_word(text)
    kind = word.upper()
    if kind == "NONE":
        if text or check:
            raise ChangeError("HEALTHCHECK NONE takes no arguments")
        config["Healthcheck"] = {"Test": ["NONE"]}
        return
    if kind != "CMD":
        raise ChangeError(f'Unknown type "{kind}" in HEALTHCHECK (try CMD)')
    parsed = _json_list(text)
    if parsed is None and not text.strip():
        raise ChangeError("Missing command after HEALTHCHECK CMD")
    config["Healthcheck"] = {"Test": ["CMD", *parsed] if parsed is not None else ["CMD-SHELL", text.strip()],
                             **check}


_HANDLERS: dict[str, Callable[[dict[str, Any], str, dict[str, Any]], None]] = {
    "cmd": _cmd, "entrypoint": _entrypoint, "env": _env, "expose": _expose, "healthcheck": _healthcheck,
    "label": _label, "onbuild": _onbuild, "stopsignal": _stopsignal, "user": _user, "volume": _volume,
    "workdir": _workdir,
}


def _lines(changes: list[str]) -> list[str]:
    """Dockerfile lines of the changes: comments and blank lines dropped, `\\` continuations joined."""
    lines, pending = [], ""
    for raw in "\n".join(changes).split("\n"):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1]
            continue
        lines.append(pending + stripped)
        pending = ""
    if pending.strip():
        lines.append(pending)
    return lines


def apply_changes(config: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """The run config (Docker's "config" object) with the change instructions applied."""
    lines = _lines(list(changes))
    for line in lines:  # every instruction is checked before any is applied, as moby does
        keyword = line.split(None, 1)[0].lower()
        if keyword not in _HANDLERS:
            raise ChangeError(f"{keyword} is not a valid change command")
    out = json.loads(json.dumps(config))
    state: dict[str, Any] = {}
    for line in lines:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.split("\t")[0]
        if keyword.lower() != "healthcheck" and keyword.lower() not in ("cmd", "entrypoint", "onbuild") \
                and not rest.strip():
            raise ChangeError(f"{keyword.upper()} requires at least one argument")
        _HANDLERS[keyword.lower()](out, rest, state)
    return out
