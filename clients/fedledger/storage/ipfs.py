"""IPFS through the Kubo RPC API (plain HTTP), so the same code talks to the project's local
daemon or to a real Kubo node elsewhere: only the API address changes.

Files are added as CIDv1 with raw leaves and pinned; reads are bounded in size and time,
because the CID of a file comes from a stranger's commit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import requests

DEFAULT_API = "http://127.0.0.1:5911"
ENV_API = "FEDLEDGER_IPFS_API"
# How long a daemon that failed a fetch gets to prove it is still up (by answering `version`).
PROBE_TIMEOUT = 2.0


class IpfsError(RuntimeError):
    """Base class of IPFS failures."""


class IpfsUnavailableError(IpfsError):
    """The daemon does not answer at its API address."""


class ContentUnavailableError(IpfsError):
    """The content could not be fetched in time (unknown CID, or no provider)."""


class ContentTooLargeError(IpfsError):
    """The content is larger than the caller allows."""


@dataclass(frozen=True)
class Pinned:
    cid: str
    size: int


class IpfsClient:
    """A small Kubo RPC API client: add+pin, cat (bounded), pin, version."""

    def __init__(self, api: str | None = None, timeout: float = 30.0) -> None:
        self.api = (api or os.environ.get(ENV_API) or DEFAULT_API).rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()

    def version(self) -> str:
        return str(self._post("version").json().get("Version", "unknown"))

    def add(self, data: bytes, name: str = "file") -> Pinned:
        """Adds and pins `data`; returns its CIDv1 (base32)."""
        params = {"cid-version": "1", "raw-leaves": "true", "pin": "true", "cid-base": "base32"}
        files = {"file": (name, data, "application/octet-stream")}
        answer = self._post("add", params=params, files=files).json()
        return Pinned(cid=str(answer["Hash"]), size=len(data))

    def cat(self, cid: str, max_bytes: int, timeout: float | None = None) -> bytes:
        """The content of `cid`, refusing more than `max_bytes` and giving up after `timeout`."""
        wait = timeout if timeout is not None else self.timeout
        params = {"arg": cid, "length": str(max_bytes + 1), "timeout": f"{wait:g}s"}
        try:
            response = self._session.post(
                f"{self.api}/api/v0/cat", params=params, stream=True, timeout=wait + 5
            )
        except requests.Timeout:
            raise self._fetch_failed(f"{cid}: no answer within {wait:g}s") from None
        except requests.ConnectionError as exc:
            raise IpfsUnavailableError(f"IPFS API at {self.api} is not reachable: {exc}") from None
        with response:
            if response.status_code != 200:
                raise self._fetch_failed(f"{cid}: {_message(response)}")
            chunks: list[bytes] = []
            received = 0
            try:
                for chunk in response.iter_content(chunk_size=1 << 16):
                    received += len(chunk)
                    if received > max_bytes:
                        raise ContentTooLargeError(f"{cid}: more than {max_bytes} bytes")
                    chunks.append(chunk)
            except requests.RequestException as exc:
                raise self._fetch_failed(f"{cid}: transfer failed: {exc}") from None
        return b"".join(chunks)

    def pin(self, cid: str, timeout: float | None = None) -> None:
        """Pins `cid` (fetching it if needed) so the daemon keeps it."""
        wait = timeout if timeout is not None else self.timeout
        self._post("pin/add", params={"arg": cid, "timeout": f"{wait:g}s"}, timeout=wait + 5)

    def is_pinned(self, cid: str) -> bool:
        try:
            answer = self._post("pin/ls", params={"arg": cid, "type": "recursive"}).json()
        except IpfsError:
            return False
        return bool(answer.get("Keys"))

    def _fetch_failed(self, message: str) -> IpfsError:
        """The error for a `cat` that failed: the content's (`ContentUnavailableError`), unless
        the daemon itself stopped answering (it crashed or hung mid-transfer), which is this
        node's outage (`IpfsUnavailableError`), not a sign that the file is unavailable."""
        try:
            self._session.post(f"{self.api}/api/v0/version", timeout=PROBE_TIMEOUT).raise_for_status()
        except requests.RequestException as exc:
            return IpfsUnavailableError(f"{message}; the IPFS API at {self.api} no longer answers: {exc}")
        return ContentUnavailableError(message)

    def _post(
        self,
        command: str,
        params: dict[str, str] | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
        timeout: float | None = None,
    ) -> requests.Response:
        try:
            response = self._session.post(
                f"{self.api}/api/v0/{command}", params=params, files=files, timeout=timeout or self.timeout
            )
        except requests.ConnectionError as exc:
            raise IpfsUnavailableError(f"IPFS API at {self.api} is not reachable: {exc}") from None
        except requests.Timeout:
            raise IpfsError(f"IPFS API at {self.api}: {command} timed out") from None
        if response.status_code != 200:
            raise IpfsError(f"IPFS {command} failed: {_message(response)}")
        return response


def _message(response: requests.Response) -> str:
    try:
        return str(response.json().get("Message", response.text))
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"
