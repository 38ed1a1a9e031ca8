"""Validating what people write: shared field types, checks and the messages they give.

- `InvalidInputError`: input the function refuses, with a message meant for
  a person; `validated(model, value, prefix)` turns pydantic's errors into one
  line per field that says what was wrong and which form is accepted
  (`ACCEPTED_FORMS`).
- The field types every spec shares (`Dollars`, `Duration`, `DnsLabel`, ...)
  and `LocalRef`, a reference to an object in the referrer's namespace.
- `refuse_templating`, `refuse_provenance`, `refuse_repeats`,
  `refuse_soft_over_max`: checks every kind's spec runs.
- `memoized_by_json`: one validation serves every run of an unchanged spec.

Every pattern here is repeated in the XRDs' OpenAPI schemas, so the API
server rejects bad input first; the function checks again because `render`,
legacy XRs and older XRD revisions do not go through the same schema.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from function.cache import BytesLRU
from function.redact import redact

# LiteLLM's own built-in key alias rule (key_management_endpoints.py,
# _KEY_ALIAS_PATTERN), so an alias we accept is one every proxy accepts.
KEY_ALIAS_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_\-/.@]{0,253}[a-zA-Z0-9]$"
# LiteLLM parses durations with (\d+)(mo|[smhdw]); zero would mean "now". The
# digits are bounded per unit (at most 99999999s, 9999999m, 99999h, 9999d,
# 999w, 999mo: 83 years at the most): LiteLLM adds a duration to now and
# answers 500 once that passes year 9999 (999999w did).
DURATION_PATTERN = (
    r"^([1-9][0-9]{0,7}s|[1-9][0-9]{0,6}m|[1-9][0-9]{0,4}h|[1-9][0-9]{0,3}d"
    r"|[1-9][0-9]{0,2}w|[1-9][0-9]{0,2}mo)$"
)
# Metadata keys under this prefix say which VirtualKey made a key (provenance);
# only the function writes them, so a tenant cannot claim another's key.
PROVENANCE_PREFIX = "auth.litellm.ai/"
# Dollars as a string, so that YAML never turns 0.1 into a binary float.
DOLLARS_PATTERN = r"^(0|[1-9][0-9]{0,11})(\.[0-9]{1,6})?$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]{1,253}$"  # noqa: S105 - a pattern.
# provider-http resolves {{ name:namespace:key }} anywhere in a body, so a
# user string that looks like one could make it send another Secret's value
# to LiteLLM, where the tenant could read it back through /key/info.
PLACEHOLDER_OPENER = "{{"
_MAX_SHOWN = 60
_T = TypeVar("_T")

ACCEPTED_FORMS: dict[str, str] = {
    "keyAlias": (
        "2-255 characters: letters, digits and _ - / . @, starting and ending "
        'with a letter or digit, e.g. "team-a-service"'
    ),
    "models": 'a list of model names, e.g. ["gpt-4o"]; empty or absent means all models',
    "maxBudget": 'dollars as a quoted decimal with at most 6 decimals, e.g. "10" or "0.5"',
    "softBudget": 'dollars as a quoted decimal with at most 6 decimals, e.g. "8"',
    "budgetDuration": (
        'a whole number followed by s, m, h, d, w or mo, e.g. "30s", "1h", "30d", "1mo", '
        "of at most 8 digits of s, 7 of m, 5 of h, 4 of d, 3 of w or 3 of mo"
    ),
    "duration": (
        'a whole number followed by s, m, h, d, w or mo, e.g. "30d", of at most 8 digits '
        "of s, 7 of m, 5 of h, 4 of d, 3 of w or 3 of mo"
    ),
    "tpmLimit": "a whole number >= 0",
    "rpmLimit": "a whole number >= 0",
    "maxParallelRequests": "a whole number >= 1",
    "metadata": "a map of string keys to string values",
    "tags": "a list of strings",
    "connectionRef": (
        "either instanceRef {name, namespace} or url plus masterKeySecretRef {name, namespace, key}"
    ),
    "name": "a Kubernetes name: lower-case letters, digits and '-', at most 63 characters",
    "namespace": "a Kubernetes namespace name: lower-case letters, digits and '-'",
    "key": "a Secret data key: letters, digits, '-', '_' and '.'",
    "url": "an http:// or https:// URL with a host and no query, e.g. http://litellm.litellm:4000",
    "requestTimeout": 'seconds or minutes, e.g. "30s" or "2m"',
    "maskSecretNamespace": "a Kubernetes namespace name of the platform's",
    "blocked": "true or false",
    "teamRef": "{name: <a Team in the same namespace>}",
    "every": 'a duration such as "30d" or "12h" (as for duration)',
    "gracePeriod": 'a duration such as "1h" or "1d" (as for duration)',
    "trigger": "a whole number >= 0; change it to rotate the key now",
    "gracePeriodBudget": 'dollars as a quoted decimal, e.g. "1"',
    "userRef": "{name: <a User in the same namespace>}",
}


class InvalidInputError(ValueError):
    """Input that the function refuses, with a message meant for a person."""


def _number_as_string(value: Any) -> Any:
    # The XRD marks dollar fields x-kubernetes-int-or-string, so `maxBudget: 10`
    # is allowed; protobuf's Struct then carries it as the double 10.0. Other
    # floats are refused: 0.1 has no exact binary form.
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return value


def _whole_number(value: Any) -> Any:
    # Strict like the API server (no "10", no true), but protobuf's doubles
    # with no fraction are the integers they were in the YAML.
    if isinstance(value, bool) or isinstance(value, str):
        msg = "must be a whole number, not a string or boolean"
        raise ValueError(msg)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Dollars = Annotated[
    str,
    BeforeValidator(_number_as_string),
    StringConstraints(pattern=DOLLARS_PATTERN),
]
Duration = Annotated[str, StringConstraints(pattern=DURATION_PATTERN)]
DnsLabel = Annotated[str, StringConstraints(pattern=DNS_LABEL_PATTERN)]
DnsSubdomain = Annotated[str, StringConstraints(pattern=DNS_SUBDOMAIN_PATTERN)]
SecretKey = Annotated[str, StringConstraints(pattern=SECRET_KEY_PATTERN)]
NonEmpty = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Count = Annotated[int, BeforeValidator(_whole_number), Field(ge=0, le=2**53)]
Parallel = Annotated[int, BeforeValidator(_whole_number), Field(ge=1, le=2**31)]
# A platform's small limit (how many of something a namespace may have).
SmallLimit = Annotated[int, BeforeValidator(_whole_number), Field(ge=1, le=64)]


class StrictModel(BaseModel):
    """A frozen model that refuses unknown fields."""

    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="forbid")


class SpecModel(BaseModel):
    """A kind's spec: frozen, and unknown fields ignored rather than refused.

    Crossplane keeps its own machinery (compositionRef, resourceRefs,
    claimRef, crossplane) in the same `spec`, and the XRD's structural
    schema already prunes typos.
    """

    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")


# A spec's metadata (at most 64 entries, with Field(max_length=64)): values up to 4 KiB.
Metadata = dict[NonEmpty, Annotated[str, StringConstraints(max_length=4096)]]


class LocalRef(StrictModel):
    """A User or Team in the referrer's own namespace, by name."""

    name: DnsSubdomain


def refuse_provenance(metadata: dict[str, str]) -> None:
    """Refuse metadata keys that record provenance, which only the function writes."""
    provenance = sorted(k for k in metadata if k.startswith(PROVENANCE_PREFIX))
    if provenance:
        msg = (
            f"must not set {', '.join(repr(k) for k in provenance)}: keys starting with "
            f"{PROVENANCE_PREFIX!r} record which object made a key, user or team on the "
            "proxy, and only the function writes them"
        )
        raise ValueError(msg)


def refuse_soft_over_max(soft: str | None, most: str | None) -> None:
    """Refuse a soft budget above the budget (raises ValueError)."""
    if soft is not None and most is not None and Decimal(soft) > Decimal(most):
        msg = (
            f"spec.softBudget: {soft} is larger than spec.maxBudget {most}; lower "
            "softBudget or raise maxBudget"
        )
        raise ValueError(msg)


def refuse_repeats(path: str, values: list[str]) -> None:
    """Refuse a list that names something twice (raises ValueError)."""
    if len(set(values)) != len(values):
        msg = f"{path}: must not repeat an entry"
        raise ValueError(msg)


def refuse_templating(spec: BaseModel) -> None:
    """Refuse strings provider-http would not send as they are (raises ValueError).

    Every kind's spec goes into a Request body, so every kind checks this.
    """
    for path, text in _strings(spec.model_dump(by_alias=True, exclude_none=True)):
        if PLACEHOLDER_OPENER in text:
            msg = (
                f"{path} contains '{{{{', which provider-http would read as a "
                "secret placeholder; remove it"
            )
            raise ValueError(msg)
        if _is_json_object(text):
            msg = (
                f"{path} is a JSON object in a string, which provider-http would turn "
                "into an object before LiteLLM sees it; store it in another form"
            )
            raise ValueError(msg)


def _is_json_object(text: str) -> bool:
    # provider-http converts every string of its jq context that parses as a
    # JSON object into that object (internal/json/util.go).
    if not text.lstrip().startswith("{"):
        return False
    try:
        return isinstance(json.loads(text), dict)
    except RecursionError:
        return True  # nested deeper than Python parses; Go parses it, to an object
    except ValueError:
        return False


def _strings(value: Any, path: str = "spec") -> list[tuple[str, str]]:
    """Every string in a nested structure, keys included, with its path."""
    found: list[tuple[str, str]] = []
    if isinstance(value, str):
        found.append((path, value))
    elif isinstance(value, dict):
        for key, item in value.items():
            found.append((f"{path}.{key}", str(key)))
            found.extend(_strings(item, f"{path}.{key}"))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_strings(item, f"{path}[{index}]"))
    return found


def describe_errors(error: ValidationError, prefix: str) -> str:
    """One line per invalid field: where it is, what is wrong, what is accepted."""
    lines = []
    for item in error.errors(include_url=False):
        path = prefix + "".join(
            f"[{part}]" if isinstance(part, int) else f".{redact(str(part), _MAX_SHOWN)}"
            for part in item["loc"]
        )
        field = next((p for p in reversed(item["loc"]) if isinstance(p, str)), "")
        problem = _problem(item)
        accepted = ACCEPTED_FORMS.get(field)
        # Whole-spec rules name their own field path already.
        line = problem if problem.startswith(prefix + ".") else f"{path}: {problem}"
        if accepted and item["type"] not in ("value_error", "missing"):
            line += f"; expected {accepted}"
        elif accepted and item["type"] == "missing":
            line += f"; set it to {accepted}"
        lines.append(line)
    return "; ".join(lines)


def _problem(item: Any) -> str:
    kind = item["type"]
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known field"
    if kind == "value_error":
        return str(item["msg"]).removeprefix("Value error, ")
    got = item.get("input")
    if kind == "string_pattern_mismatch":
        return f"has the wrong form (got {_shown(got)})"
    text = str(item["msg"])
    return f"{text[:1].lower()}{text[1:]} (got {_shown(got)})"


def _shown(got: Any) -> str:
    if isinstance(got, str):
        return repr(redact(got, _MAX_SHOWN))
    return repr(got) if isinstance(got, int | float | bool) else type(got).__name__


# A validated model holds the same strings as its JSON text, and some more.
MODEL_BYTES_PER_CHARACTER = 4


def memoized_by_json(max_bytes: int) -> Callable[[Callable[[Any], _T]], Callable[[Any], _T]]:
    """Cache a parser of JSON-like input by the input's canonical JSON text.

    Crossplane runs the function again and again on an unchanged spec and
    input, and the models are frozen, so one validation serves them all.
    The cache is bounded in bytes (`function.cache.BytesLRU`), counting
    `MODEL_BYTES_PER_CHARACTER` bytes a character of the text. Errors are
    not cached; input that is not JSON is parsed every time.
    """

    def wrap(parse: Callable[[Any], _T]) -> Callable[[Any], _T]:
        cache: BytesLRU[str, _T] = BytesLRU(max_bytes)

        @functools.wraps(parse)
        def parse_any(value: Any) -> _T:
            try:
                text = json.dumps(value, sort_keys=True)
            except (TypeError, ValueError, RecursionError):
                return parse(value)
            found = cache.get(text)
            if found is None:
                found = parse(value)
                cache.put(text, found, len(text) * MODEL_BYTES_PER_CHARACTER)
            return found

        parse_any.cache = cache  # type: ignore[attr-defined]
        return parse_any

    return wrap


_M = TypeVar("_M", bound=BaseModel)


def validated(model: type[_M], value: Any, prefix: str, *, not_object: str, fix: str = "") -> _M:
    """`value` as `model`, or InvalidInputError with one line per bad field under `prefix`.

    `not_object` is the message when `value` is not a mapping at all; `fix`
    is appended to field errors (where a person makes the fix).
    """
    if not isinstance(value, dict):
        raise InvalidInputError(not_object)
    try:
        return model.model_validate(value)
    except ValidationError as e:
        raise InvalidInputError(describe_errors(e, prefix) + fix) from None
