"""Whether the Ray cluster a command is to join (``--address`` or ``RAY_ADDRESS``) can be joined, checked
in a second or two before any data is read.

Left to ``ray.init``, a head that refuses this machine's token fails after about 20 s with a
``ConnectionError`` that hides the cause, and an address where nothing listens retries for 40 s.
Here a TCP connection (a few seconds at most) says whether anything listens, then one request to
the head's GCS says whether it takes this machine's token; either failure is one line naming the
cause and the fix.
"""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from typing import Iterator

from results.errors import OptionError

# Seconds to wait for the head's port to accept a connection: a reachable head answers at once.
CONNECT_TIMEOUT_S = 5.0
# Ray's own words for a local cluster found on this machine: nothing to probe beforehand.
LOCAL = ("auto", "local")
TOKEN_FIX = ("export RAY_AUTH_MODE=token and RAY_AUTH_TOKEN=<the head's token> (print it on the head with "
             "`ray get-auth-token`) here, as for every `ray start` of the cluster, then run again")


def cluster_address(address: str | None) -> str | None:
    """The cluster to join: ``address``, else ``RAY_ADDRESS``, else ``None`` (start a local Ray)."""
    return address or os.environ.get("RAY_ADDRESS") or None


def check_cluster(address: str | None) -> None:
    """Raise :class:`OptionError` (one line: the cause and the fix) when the cluster at ``address`` (or
    ``RAY_ADDRESS``) cannot be reached or refuses this machine's authentication token; do nothing
    when no cluster is to be joined."""
    address = cluster_address(address)
    if address is None or address in LOCAL:
        return
    host, port = _host_port(address)
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc)).lower()
        raise OptionError(f"no Ray cluster answers at {address} ({reason}): start its head there with "
                          f"`ray start --head --port={port}`, or give the head's HOST:PORT with --address or "
                          "RAY_ADDRESS.") from None
    if address.startswith("ray://"):
        # Ray Client's server, not the GCS: ray.init reports its own refusals.
        return
    _check_gcs(address)


def _host_port(address: str) -> tuple[str, int]:
    """The host and port of ``HOST:PORT`` or ``ray://HOST:PORT`` (an IPv6 host in brackets)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise OptionError(f"--address / RAY_ADDRESS {address!r} is not HOST:PORT: give the head's address and the "
                          "port of its `ray start --head --port=PORT` (6379 by default).")
    return host.strip("[]"), int(port)


def _check_gcs(address: str) -> None:
    """One request to the head's GCS with this process's token settings."""
    from ray._raylet import GcsClient
    from ray.exceptions import AuthenticationError, RpcError

    try:
        with _stderr_silenced():
            GcsClient(address=address)
    except AuthenticationError:
        given = os.environ.get("RAY_AUTH_MODE", "").lower() == "token"
        cause = "does not take this machine's token" if given else "asks for token authentication"
        raise OptionError(f"the Ray cluster at {address} {cause}: {TOKEN_FIX}.") from None
    except RpcError as exc:
        raise OptionError(f"{address} answers but not as a Ray head ({str(exc).split('.')[0]}): give the head's "
                          "HOST:PORT (the port of its `ray start --head --port=PORT`) with --address or "
                          "RAY_ADDRESS.") from None


@contextmanager
def _stderr_silenced() -> Iterator[None]:
    """File descriptor 2 sent to /dev/null: Ray's C++ client logs each refused attempt there, and the
    one line the CLI prints is the whole story."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
