"""`--listen` and `--forward` addresses: URL text -> a checked Endpoint, or a message naming what is wrong.

    http://HOST:PORT[/PATH]   NDJSON bodies (listen: POST to PATH or any path; forward: POST to PATH)
    tcp://HOST:PORT           newline-delimited JSON on a stream
    unix:///ABSOLUTE/PATH     the same on a unix socket (a listening socket is created 0600)
    forward://HOST:PORT       the Fluent forward protocol (msgpack)
    stdout                    (--forward only) NDJSON on standard output

Per-endpoint options ride in the query string, e.g. `tcp://0.0.0.0:9601?host_os=windows&envelope=log`.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import parse_qsl, urlsplit

import msgspec

from shellsieve.events.envelope import parse_fields
from shellsieve.events.hostos import HOST_OS

__all__ = ["Endpoint", "EndpointError", "parse_listen", "parse_forward", "HOST_OS", "LISTEN_OPTIONS",
           "FORWARD_OPTIONS", "DEFAULT_PORTS"]

LISTEN_SCHEMES: Final = ("http", "tcp", "unix", "forward")
FORWARD_SCHEMES: Final = ("http", "tcp", "unix", "forward", "stdout")

# The ports the shipped configs (deploy/) use; a listen address may name any port.
DEFAULT_PORTS: Final = {"http": 9600, "tcp": 9601, "forward": 24224}

# Query options by endpoint kind: name -> allowed values (None: any text).
LISTEN_OPTIONS: Final[dict[str, tuple[str, ...] | None]] = {
    "host_os": HOST_OS,  # the OS of text events that carry none (default: --host-os)
    "envelope": None,  # comma-separated shipper envelope fields, "" none (default: --envelope-fields)
}
FORWARD_OPTIONS: Final[dict[str, tuple[str, ...] | None]] = {
    "format": ("ndjson", "json_array"),  # http only: the body shape the receiver takes
    "tag": None,  # forward only: the Fluent tag of the events sent
}


class EndpointError(ValueError):
    """An address that cannot be used; the message says why, quoting it."""


class Endpoint(msgspec.Struct, frozen=True):
    scheme: str
    host: str = ""
    port: int = 0
    path: str = ""  # http: the request path; unix: the socket's file
    options: dict[str, str] = {}
    text: str = ""  # as the user wrote it, for logs and `stopped`

    @property
    def name(self) -> str:
        return self.text or self.scheme


def _parse(text: str, schemes: tuple[str, ...], allowed: dict[str, tuple[str, ...] | None]) -> Endpoint:
    if text == "stdout" and "stdout" in schemes:
        return Endpoint("stdout", text=text)
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in schemes or scheme == "stdout":
        listed = ", ".join(s + "://" for s in schemes if s != "stdout")
        raise EndpointError(f"{text!r}: the scheme must be one of {listed}"
                            + (" or stdout" if "stdout" in schemes else ""))
    options: dict[str, str] = {}
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise EndpointError(f"{text!r}: the query string is not key=value pairs") from None
    for key, value in pairs:
        if key not in allowed:
            raise EndpointError(f"{text!r}: unknown option {key!r} (known: {', '.join(sorted(allowed)) or 'none'})")
        choices = allowed[key]
        if choices is not None and value not in choices:
            raise EndpointError(f"{text!r}: {key} must be one of {', '.join(choices)}, got {value!r}")
        options[key] = value
    if scheme == "unix":
        if parts.netloc or not parts.path.startswith("/"):
            raise EndpointError(f"{text!r}: a unix socket is unix:///absolute/path")
        return Endpoint("unix", path=parts.path, options=options, text=text)
    try:
        port = parts.port
    except ValueError:
        raise EndpointError(f"{text!r}: the port must be a number from 1 to 65535") from None
    host = parts.hostname or ""
    if not host or port is None or port == 0:
        example = f"{scheme}://127.0.0.1:{DEFAULT_PORTS.get(scheme, 9700)}"
        raise EndpointError(f"{text!r}: give a host and a port, e.g. {example}")
    if scheme != "http" and parts.path not in ("", "/"):
        raise EndpointError(f"{text!r}: a {scheme} address has no path")
    return Endpoint(scheme, host, port, parts.path or "/" if scheme == "http" else "", options, text)


def parse_listen(text: str) -> Endpoint:
    """A `--listen` address; raises EndpointError."""
    ep = _parse(text, LISTEN_SCHEMES, LISTEN_OPTIONS)
    if "envelope" in ep.options:
        try:
            parse_fields(ep.options["envelope"])
        except ValueError as exc:
            raise EndpointError(f"{text!r}: envelope: {exc}") from None
    return ep


def parse_forward(text: str) -> Endpoint:
    """A `--forward` address; raises EndpointError."""
    ep = _parse(text, FORWARD_SCHEMES, FORWARD_OPTIONS)
    if "format" in ep.options and ep.scheme != "http":
        raise EndpointError(f"{text!r}: format applies to http:// only")
    if "tag" in ep.options and ep.scheme != "forward":
        raise EndpointError(f"{text!r}: tag applies to forward:// only")
    return ep
