"""Bearer tokens, roles and scopes (权限) for the HTTP API.

Tokens live in a YAML/JSON file (``GRIDWATCH_TOKENS``) as SHA-256 hashes, never in clear::

    tokens:
      - name: duty-g1            # who; becomes the actor of their commands (no personal data)
        sha256: 9f2c...          # gridwatch token new prints a token and this line
        role: responder          # admin | command_center | responder | ingest
        scope: "410325100001001" # responders: the unit whose subtree they answer for
        reporter_id: W1          # ingest (optional): the only reporter_id its reports may carry

Roles: ``admin`` and ``command_center`` see and act on every grid (指挥中心); ``responder`` sees
and acts on its unit's subtree only; ``ingest`` may only post reports (grid-worker apps).
Tokens are random 256-bit strings, so one SHA-256 is the right hash (no password stretching is
needed, and a lookup costs one hash). 401: no or unknown token; 403: a known token whose role or
scope does not allow the request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline.errors import ConfigError
from pipeline.yaml_config import load_model

Role = Literal["admin", "command_center", "responder", "ingest"]
SEE_ALL = frozenset({"admin", "command_center"})


class TokenEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    role: Role
    scope: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    #: an ingest token bound to one grid worker: a report with another reporter_id is a 403
    reporter_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:-]{1,64}$")

    @model_validator(mode="after")
    def _scope(self) -> TokenEntry:
        if self.role == "responder" and not self.scope:
            raise ValueError(f"token {self.name}: a responder needs a scope (its unit)")
        if self.reporter_id is not None and self.role not in ("ingest", "admin"):
            raise ValueError(f"token {self.name}: only an ingest (or admin) token posts reports, "
                             "so only it takes a reporter_id")
        return self


class TokenFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tokens: list[TokenEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> TokenFile:
        names = [t.name for t in self.tokens]
        if len(names) != len(set(names)):
            raise ValueError("token names must be unique")
        return self


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: the token's name, role and scope."""

    name: str
    role: str
    scope: str | None
    reporter_id: str | None = None  # the reporter its reports must name (ingest tokens)

    @property
    def sees_all(self) -> bool:
        return self.role in SEE_ALL

    def may_see(self, path: list[str] | tuple[str, ...]) -> bool:
        """Whether a record on this grid path (county ... grid) is inside the principal's scope."""
        if self.sees_all:
            return True
        return self.role == "responder" and self.scope in path


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return "gw_" + secrets.token_urlsafe(32)


class TokenBook:
    """Token hash -> principal."""

    def __init__(self, entries: list[TokenEntry]) -> None:
        self._by_hash = {e.sha256: Principal(e.name, e.role, e.scope, e.reporter_id) for e in entries}

    @classmethod
    def load(cls, path: str | Path) -> TokenBook:
        return cls(load_model(TokenFile, Path(path), "tokens").tokens)

    def __len__(self) -> int:
        return len(self._by_hash)

    def lookup(self, authorization: str | None) -> Principal | None:
        """The principal of an ``Authorization: Bearer <token>`` header, or None (also for bytes
        that are not ASCII: tokens never hold any, and the server decodes them as escapes)."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        token = authorization[7:].strip()
        if not token or len(token) > 256 or not token.isascii():
            return None
        digest = hash_token(token)
        for known, principal in self._by_hash.items():  # constant time per entry
            if hmac.compare_digest(known, digest):
                return principal
        return None


def require_file(path: str | None) -> TokenBook:
    if not path:
        raise ConfigError("GRIDWATCH_TOKENS is not set: the API needs a tokens file "
                          "(gridwatch token new --role admin --name me >> tokens.yaml)")
    return TokenBook.load(path)
