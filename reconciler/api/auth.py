"""Who may call the API: bearer tokens (static, by SHA-256) and JWTs, mapped to three roles.

``viewer`` reads (every GET under ``/api/v1``), ``operator`` also triggers runs, ``admin`` also
creates, replaces and deletes API-owned tasks. Each route declares the role it needs in its
OpenAPI operation (``x-required-role``, see :func:`role_extra`); the route class in
``app.py`` enforces exactly that declaration, so what the document says is what the server does.

The configuration is a YAML file (:meth:`AuthConfig.load`)::

    tokens:
      - {name: ci-bot, sha256: "<hex SHA-256 of the token>", role: operator}
    jwt:                       # optional
      algorithm: HS256         # or RS256 / ES256 ... with publicKeyFile
      secretFile: /etc/crontask/jwt-secret
      issuer: https://issuer.example
      audience: crontask
      roleClaim: role
    sessionSecretFile: /etc/crontask/session-secret   # optional
    metricsRequireAuth: false

The status page's sessions are sealed with a key derived from ``sessionSecretFile`` or an HMAC
``jwt.secretFile``; without either, with a key of this process only (token digests and a
public key are no secret), so sessions end at a restart and hold on one replica.

Tokens are never logged, never compared in variable time, and a JWT is verified with the
configured algorithm only (the token's own ``alg`` header is not trusted).
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import hashlib
import hmac
import json
import logging
import secrets
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import jwt
import yaml
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic import model_validator as _model_validator
from pydantic.alias_generators import to_camel

from reconciler.api.jwtkeys import holds_private_key, public_bytes, weakness
from reconciler.loopback import is_loopback as is_loopback  # check_listen; its old home
from reconciler.secretfile import MAX_SECRET_FILE_BYTES, read_secret_file
from reconciler.sinks.refusals import RefusalLog

log = logging.getLogger("crontask.api")


class Role(enum.StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, required: Role) -> bool:
        return self.rank >= required.rank


_RANKS: Final = {Role.VIEWER: 1, Role.OPERATOR: 2, Role.ADMIN: 3}

# An auth file is a few lines per token: a bound on what is read, whatever the path names.
MAX_CONFIG_BYTES: Final = 1 << 20
MAX_TOKENS: Final = 10_000  # static tokens in one auth file
_NAMED: Final = 10  # duplicated token names named in an error
_SESSION_KEY_CONTEXT: Final = b"crontask page session key v1\0"
# jwt.decode's errors outside its own (a bug, a key it cannot use; a 401): a traceback a type
# every 10 minutes.
_UNEXPECTED: Final = RefusalLog(keep=32)

PUBLIC: Final = "public"
"""The ``x-required-role`` of a route anyone may call (health, readiness)."""

REQUIRED_ROLE_KEY: Final = "x-required-role"

RequiredRole = Literal["public", "viewer", "operator", "admin"]


def role_extra(role: RequiredRole) -> dict[str, Any]:
    """The ``openapi_extra`` declaring (and, through the route class, enforcing) ``role``."""
    return {REQUIRED_ROLE_KEY: role}


HMAC_ALGORITHMS: Final = ("HS256", "HS384", "HS512")
KEY_ALGORITHMS: Final = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")
Algorithm = Literal[
    "HS256",
    "HS384",
    "HS512",
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
]
MIN_HMAC_SECRET_BYTES: Final = 32
# Clocks differ between an issuer and crontask: a token minted a second ahead (``iat``,
# ``nbf`` in the future) was refused until that second had passed here. Its ``exp`` gets as
# much (one leeway covers both): a token lives at most 30 s past its exp.
JWT_LEEWAY_SECONDS: Final = 30

Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")]


class AuthConfigError(ValueError):
    """The auth file cannot be used; the message names the file and the offending key."""


class _Config(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


class StaticToken(_Config):
    name: str = Field(min_length=1, description="Who holds it; shown in logs as the principal.")
    sha256: Sha256Hex = Field(description="Hex SHA-256 of the token (the token is never stored).")
    role: Role

    @field_validator("sha256")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()


class JwtSettings(_Config):
    algorithm: Algorithm
    secret_file: Path | None = None
    public_key_file: Path | None = None
    issuer: str = Field(min_length=1)
    audience: str = Field(min_length=1)
    role_claim: str = Field("role", min_length=1)

    @_model_validator(mode="after")
    def _key_matches_algorithm(self) -> JwtSettings:
        if self.algorithm in HMAC_ALGORITHMS:
            if self.secret_file is None or self.public_key_file is not None:
                raise ValueError(f"{self.algorithm} needs secretFile (and no publicKeyFile)")
        elif self.public_key_file is None or self.secret_file is not None:
            raise ValueError(f"{self.algorithm} needs publicKeyFile (and no secretFile)")
        return self


class _AuthFile(_Config):
    tokens: list[StaticToken] = Field(default_factory=list)
    jwt: JwtSettings | None = None
    metrics_require_auth: bool = False
    session_secret_file: Path | None = None

    @field_validator("tokens", mode="before")
    @classmethod
    def _not_too_many(cls, value: Any) -> Any:
        # Before each token is validated: 1 MiB of YAML aliases holds some 340 000 of them.
        if isinstance(value, list) and len(value) > MAX_TOKENS:
            raise ValueError(f"{len(value)} tokens: at most {MAX_TOKENS} (use jwt for more)")
        return value

    @_model_validator(mode="after")
    def _usable(self) -> _AuthFile:
        # No token and no jwt: ``{}`` or a template's empty values, a mistake that must lock
        # no one out. ``tokens: []`` says it on purpose: refused at start only (for_start), it
        # revokes the last token of a running crontask (authfile.py). Counted once each
        # (a file of 1 MiB can hold some 340 000 tokens through YAML aliases, and the watcher
        # checks every version of it), and named ten at most.
        if not self.tokens and self.jwt is None and "tokens" not in self.model_fields_set:
            raise ValueError(
                "neither tokens nor jwt is configured: nobody could log in "
                "(tokens: [] says no token on purpose)"
            )
        counts = collections.Counter(t.name for t in self.tokens)
        duplicated = sorted(name for name, count in counts.items() if count > 1)
        if duplicated:
            more = f" and {len(duplicated) - _NAMED} more" if len(duplicated) > _NAMED else ""
            shown = ", ".join(duplicated[:_NAMED])
            raise ValueError(f"token names must be unique: {shown}{more}")
        digests = [t.sha256 for t in self.tokens]
        if len(set(digests)) != len(digests):
            raise ValueError("two tokens have the same sha256")
        return self


@dataclasses.dataclass(frozen=True, slots=True)
class Principal:
    name: str  # a token's name, a JWT's sub, or "anonymous"
    role: Role | None  # None: authenticated, but with no role crontask knows
    via: Literal["token", "jwt", "none"]


ANONYMOUS: Final = Principal("anonymous", Role.ADMIN, "none")
"""Who calls an API without auth configured (loopback only, or --insecure-no-auth)."""


class AuthFailed(Exception):
    """No usable credential (401). ``reason`` is logged; it never contains the token."""

    def __init__(self, reason: str, *, invalid_token: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.invalid_token = invalid_token


@dataclasses.dataclass(frozen=True)
class AuthConfig:
    """A loaded auth file: the token digests, the JWT verification key, the metrics setting."""

    tokens: tuple[StaticToken, ...]
    jwt: JwtSettings | None
    jwt_key: Any  # bytes (HMAC secret) or a public key object
    metrics_require_auth: bool = False
    # What seals the status page's session cookies (web/session.py). With a secret named
    # (sessionSecretFile, an HMAC JWT secretFile) it is derived from the file and that secret,
    # so every replica, and the next start, opens the cookies of the others, and a change of
    # what the file says (not a comment) signs everyone out. Without one it is drawn by
    # this process (``sessions_shared`` False): token hashes and a public JWT key are no
    # secret (the file is often readable by every local user), and a key derived from them
    # alone would let anyone who reads the file unseal the credential in a cookie; then a
    # session lasts as long as the process.
    session_key: bytes = dataclasses.field(default=b"", repr=False)
    sessions_shared: bool = True
    # The same for the same settings (and secrets): a comment changed in the file, or its
    # layout, leaves it as it was (``authfile.py`` keeps the sessions then).
    settings_digest: bytes = dataclasses.field(default=b"", repr=False)

    @classmethod
    def load(cls, path: str | Path) -> AuthConfig:
        """Read and check ``path``; :class:`AuthConfigError` names the file and key at fault.

        Relative ``secretFile``/``publicKeyFile`` paths are relative to the auth file.
        """
        path = Path(path)
        return cls.parse(cls.read(path), path).for_start(path)

    @staticmethod
    def read(path: Path) -> bytes:
        """The file's bytes: a regular file only (a named pipe put in its place would block
        the reader for ever), of :data:`MAX_CONFIG_BYTES` at most."""
        try:
            return read_secret_file(path, MAX_CONFIG_BYTES)
        except ValueError as exc:
            raise AuthConfigError(f"{path}: {exc}") from None

    @classmethod
    def parse(cls, data: bytes, path: Path) -> AuthConfig:
        """:meth:`load` of bytes read from ``path``."""
        return cls.from_mapping(_yaml(data, path), source=str(path), base=path.parent)

    @property
    def accepts_none(self) -> bool:
        """No token and no jwt: every credential is refused."""
        return not self.tokens and self.jwt is None

    def for_start(self, source: str | Path) -> AuthConfig:
        """These settings, unless they accept no credential: a crontask started so would
        serve no one (a file emptied while it runs revokes the last token, ``authfile.py``)."""
        if self.accepts_none:
            raise AuthConfigError(
                f"{source}: neither tokens nor jwt is configured: nobody could log in"
            )
        return self

    @staticmethod
    def named_files(data: bytes, path: Path) -> tuple[Path, ...]:
        """The files that :meth:`parse` of ``data`` (read from ``path``) reads: the JWT key,
        ``sessionSecretFile``. No file if ``data`` is refused before any is read: then the
        outcome depends on these bytes alone (``authfile.py`` watches what it depends on)."""
        try:
            parsed = _AuthFile.model_validate(_yaml(data, path))
        except (AuthConfigError, ValidationError):
            return ()
        named = [parsed.session_secret_file]
        if parsed.jwt is not None:
            named += [parsed.jwt.secret_file, parsed.jwt.public_key_file]
        return tuple(path.parent / name for name in named if name is not None)

    @classmethod
    def from_mapping(
        cls, raw: Any, *, source: str = "<auth>", base: Path | None = None
    ) -> AuthConfig:
        """The settings ``raw`` (an auth file's YAML) says; ``tokens: []`` without ``jwt``
        accepts no credential (see :meth:`for_start`), anything else naming neither is refused."""
        if not isinstance(raw, dict):
            raise AuthConfigError(
                f"{source}: expected a mapping with tokens/jwt/metricsRequireAuth"
            )
        try:
            parsed = _AuthFile.model_validate(raw)
        except ValidationError as exc:
            raise AuthConfigError(_describe(source, exc)) from exc
        key: Any = None
        if parsed.jwt is not None:
            key = _load_key(parsed.jwt, source, base or Path.cwd())
        secret = key if isinstance(key, bytes) else b""
        if parsed.session_secret_file is not None:
            secret += _read_secret(parsed.session_secret_file, "sessionSecretFile", source, base)
        # Token digests are no secret: only a named secret makes the key one to share.
        shared = bool(secret)
        if not shared:
            secret = secrets.token_bytes(32)
        # What the file says, not its bytes: replicas whose files differ in a comment or their
        # line ends (an Ansible header naming the host, a Windows edit) share sessions; a
        # token, a role, a key or a secret changed signs everyone out (README).
        material = json.dumps(raw, sort_keys=True, default=str).encode() + public_bytes(key)
        session_key = hmac.digest(secret, _SESSION_KEY_CONTEXT + material, "sha256")
        return cls(
            tuple(parsed.tokens),
            parsed.jwt,
            key,
            parsed.metrics_require_auth,
            session_key,
            shared,
            # A drawn key says nothing of the settings: authfile.py compares these.
            hashlib.sha256(material + b"\0" + (session_key if shared else b"")).digest(),
        )

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal behind an ``Authorization`` header value; :class:`AuthFailed` if none."""
        if not authorization:
            raise AuthFailed("no credential", invalid_token=False)
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthFailed("not a bearer credential", invalid_token=False)
        digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()
        found: StaticToken | None = None
        for entry in self.tokens:  # no early exit: the time taken does not depend on the match
            if hmac.compare_digest(digest, entry.sha256):
                found = entry
        if found is not None:
            return Principal(found.name, found.role, "token")
        if self.jwt is None or token.count(".") != 2:
            raise AuthFailed("unknown token", invalid_token=True)
        return self._verify_jwt(token, self.jwt)

    def _verify_jwt(self, token: str, settings: JwtSettings) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self.jwt_key,
                algorithms=[settings.algorithm],  # only this one, whatever the header says
                issuer=settings.issuer,
                audience=settings.audience,
                options={"require": ["exp", "iss", "aud", "sub"]},
                leeway=JWT_LEEWAY_SECONDS,
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthFailed("jwt expired", invalid_token=True) from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthFailed("jwt audience mismatch", invalid_token=True) from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthFailed("jwt issuer mismatch", invalid_token=True) from exc
        except jwt.MissingRequiredClaimError as exc:
            raise AuthFailed(f"jwt lacks the {exc.claim} claim", invalid_token=True) from exc
        except jwt.InvalidAlgorithmError as exc:
            raise AuthFailed("jwt algorithm not allowed", invalid_token=True) from exc
        except jwt.InvalidSignatureError as exc:
            raise AuthFailed("jwt signature invalid", invalid_token=True) from exc
        except jwt.InvalidTokenError as exc:
            raise AuthFailed(f"jwt invalid ({type(exc).__name__})", invalid_token=True) from exc
        except Exception as exc:  # a key PyJWT fails to verify with, say: a 401, never a 500
            if (since := _UNEXPECTED.due(kind := type(exc).__name__)) is not None:
                said = {"error": kind, "suppressed": since}  # a bug behind it is shown
                log.error(
                    "verifying a jwt failed unexpectedly", exc_info=exc, extra={"fields": said}
                )
            raise AuthFailed(f"jwt invalid ({kind})", invalid_token=True) from exc
        _check_numeric_dates(claims)
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise AuthFailed("jwt sub is not a string", invalid_token=True)
        return Principal(sub, _role_of(claims.get(settings.role_claim)), "jwt")


def _check_numeric_dates(claims: dict[str, Any]) -> None:
    """``exp``, ``nbf`` and ``iat``, where present, are JSON numbers (RFC 7519's NumericDate).
    PyJWT takes whatever ``int()`` takes: ``"99999999999"`` (a string) or ``true`` (1). No
    issuer that follows the RFC writes one: such a token is refused (a 401), not read as a
    date no one meant."""
    for claim in ("exp", "nbf", "iat"):
        value = claims.get(claim)
        if claim in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise AuthFailed(f"jwt invalid ({claim} is not a number)", invalid_token=True)


def _yaml(data: bytes, path: Path) -> Any:
    try:
        return yaml.safe_load(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise AuthConfigError(f"{path}: not UTF-8 (byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise AuthConfigError(f"{path}: not valid YAML: {exc}") from exc
    except RecursionError:  # PyYAML composes nesting by recursion: thousands of "["
        raise AuthConfigError(f"{path}: nested too deeply to be an auth file") from None


def _role_of(claim: Any) -> Role | None:
    """The highest crontask role named by the claim (a string or a list of strings)."""
    values = claim if isinstance(claim, list) else [claim]
    roles = [Role(v) for v in values if isinstance(v, str) and v in Role.__members__.values()]
    return max(roles, key=lambda r: r.rank, default=None)


def _read_secret(path: Path, field: str, source: str, base: Path | None) -> bytes:
    """The secret in ``path`` (relative to the auth file), of at least
    :data:`MIN_HMAC_SECRET_BYTES` bytes."""
    secret_path = (base or Path.cwd()) / path
    try:
        secret = read_secret_file(secret_path).strip()
    except ValueError as exc:
        raise AuthConfigError(f"{source}: {field}: cannot read {secret_path}: {exc}") from None
    if len(secret) < MIN_HMAC_SECRET_BYTES:
        raise AuthConfigError(
            f"{source}: {field}: {secret_path} holds {len(secret)} bytes; a secret needs at "
            f"least {MIN_HMAC_SECRET_BYTES}"
        )
    return secret


def _load_key(settings: JwtSettings, source: str, base: Path) -> Any:
    if settings.algorithm in HMAC_ALGORITHMS:
        assert settings.secret_file is not None
        secret = _read_secret(settings.secret_file, "jwt.secretFile", source, base)
        return _strong(settings, secret, f"{source}: jwt.secretFile: {base / settings.secret_file}")
    assert settings.public_key_file is not None
    key_path = base / settings.public_key_file
    try:  # bounded, and a regular file only, as the secrets: read again at every change
        pem = read_secret_file(key_path, MAX_SECRET_FILE_BYTES, public=True)  # no secret
    except ValueError as exc:
        raise AuthConfigError(
            f"{source}: jwt.publicKeyFile: cannot read {key_path}: {exc}"
        ) from None
    private = AuthConfigError(
        f"{source}: jwt.publicKeyFile: {key_path} holds a private key: give its public key "
        "(openssl pkey -in KEY -pubout)"
    )
    if holds_private_key(pem):  # an encrypted one too, which PyJWT would not load
        raise private
    try:
        key = jwt.get_algorithm_by_name(settings.algorithm).prepare_key(pem)
    except (jwt.InvalidKeyError, ValueError, TypeError) as exc:
        raise AuthConfigError(
            f"{source}: jwt.publicKeyFile: {key_path} is not a {settings.algorithm} public key"
        ) from exc
    # PyJWT loads a private key too: an RSA one cannot verify (every JWT a 500), and a key
    # that signs has no place in a file read by a server that only verifies.
    if not isinstance(key, RSAPublicKey | EllipticCurvePublicKey):
        raise private
    return _strong(settings, key, f"{source}: jwt.publicKeyFile: {key_path}")


def _strong(settings: JwtSettings, key: Any, where: str) -> Any:
    """``key``, unless too weak for the algorithm (jwtkeys.weakness): then refused."""
    if (why := weakness(settings.algorithm, key)) is not None:
        raise AuthConfigError(f"{where} {why}")
    return key


def _describe(source: str, exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "(top level)"
        if error["type"] == "extra_forbidden":
            parts.append(f"unknown key {where!r}")
        elif error["type"] == "missing":
            parts.append(f"missing key {where!r}")
        else:
            parts.append(f"{where}: {error['msg']}")
    return f"{source}: " + "; ".join(parts)


def check_listen(host: str, auth: AuthConfig | None, insecure_no_auth: bool) -> None:
    """Refuse to serve the API without auth on anything but loopback.

    ``ValueError`` with the reason and the two ways out; a host name other than ``localhost``
    counts as non-loopback (it is not resolved), ``localhost.`` too: a name with the root's
    dot is looked up in DNS, not in /etc/hosts, and may name another address of this machine
    (as ``cli.credentials`` holds for the client).
    """
    if auth is not None or insecure_no_auth or is_loopback(host):
        return
    raise ValueError(
        f"refusing to serve the API on {host or 'all interfaces'} without authentication: "
        "anyone who can reach it could create, delete and run tasks. Give an auth file "
        "(tokens or jwt), listen on 127.0.0.1, or pass --insecure-no-auth if something in "
        "front of crontask already authenticates every request."
    )
