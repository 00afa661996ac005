"""The public proxy URL template, ``-liveRunnerProxyUrl`` (LR-090, LR-125).

A template holds exactly one ``{proxy}``, either inside the host name
(``https://{proxy}.run.example.com``) or as the final path segment
(``https://orch.example.com/run/{proxy}``, the default under the service URI).
The same template makes proxy URLs and recognises them in incoming requests,
so both directions live here.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

import attrs

from .._errors import InvalidMessage

__all__: list[str] = []

PLACEHOLDER = "{proxy}"
_MARK = "proxy-placeholder"


def _strip_port(host: str) -> str:
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


@attrs.frozen(kw_only=True)
class ProxyTemplate:
    """A parsed template; build with :meth:`parse`."""

    raw: str
    in_host: bool
    host_prefix: str = ""
    host_suffix: str = ""
    static_path: str = ""
    host: str = ""
    path_prefix: str = ""

    @classmethod
    def parse(cls, raw: str | None, service_uri: str) -> ProxyTemplate:
        """Check ``raw`` as go-livepeer does; ``None`` or blank is ``{service}/run/{proxy}``."""
        text = (raw or "").strip() or service_uri.rstrip("/") + "/run/" + PLACEHOLDER
        if text.count(PLACEHOLDER) != 1:
            raise InvalidMessage("live runner proxy url must contain exactly one {proxy}")
        parts = urlsplit(text.replace(PLACEHOLDER, _MARK, 1))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidMessage("live runner proxy url must be an absolute http(s) URL")
        in_host, in_path = _MARK in parts.netloc, _MARK in parts.path
        if in_host == in_path:
            raise InvalidMessage("live runner proxy url placeholder must be in the host or path")
        if in_host:
            prefix, suffix = (parts.hostname or "").split(_MARK, 1)
            static = parts.path.rstrip("/")
            return cls(
                raw=text, in_host=True, host_prefix=prefix, host_suffix=suffix, static_path=static
            )
        before, after = parts.path.split(_MARK, 1)
        if not before.endswith("/") or after not in ("", "/"):
            raise InvalidMessage("live runner proxy url placeholder must be the final path segment")
        return cls(raw=text, in_host=False, host=parts.netloc.lower(), path_prefix=before)

    def url(self, proxy_id: str) -> str:
        """The public URL of ``proxy_id`` (a proxy ID, or a single-shot runner's route)."""
        value = proxy_id if self.in_host else quote(proxy_id, safe="")
        return self.raw.replace(PLACEHOLDER, value, 1)

    def match(self, host: str, path: str) -> tuple[str, str] | None:
        """``(proxy_id, app_path)`` when a request for ``host`` and ``path`` is a proxy URL."""
        if self.in_host:
            name = _strip_port(host).lower()
            start, end = len(self.host_prefix), len(name) - len(self.host_suffix)
            if start >= end or not name.startswith(self.host_prefix):
                return None
            if not name.endswith(self.host_suffix):
                return None
            app_path = self._strip_static(path)
            return None if app_path is None else (name[start:end], app_path)
        if host.lower() != self.host or not path.startswith(self.path_prefix):
            return None
        proxy_id, _, app_path = path[len(self.path_prefix) :].partition("/")
        return (proxy_id, app_path) if proxy_id else None

    def _strip_static(self, path: str) -> str | None:
        if not self.static_path:
            return path.lstrip("/")
        if path == self.static_path:
            return ""
        if path.startswith(self.static_path + "/"):
            return path[len(self.static_path) :].lstrip("/")
        return None
