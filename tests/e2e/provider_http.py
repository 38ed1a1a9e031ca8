"""Test harness: provider-http v1.0.14's namespaced ``Request`` controller, in Python.

Re-implements ``http.m.crossplane.io/v1alpha2`` Request semantics (Observe/Create/Update/
Delete, templating, secret placeholders and injection, status) and the slice of
crossplane-runtime v2.0.0's managed reconciler that drives them. ``path:line`` refers to
provider-http v1.0.14 (``xr-runtime/`` = crossplane-runtime v2.0.0); the prose is in
../shared/docs/provider-http-request.md.

jq: provider-http runs gojq v0.12.17 (``Parse`` + ``Run``, no options). This harness runs
libjq through the PyPI ``jq`` package (1.13.0 bundles jq 1.8.2, which is newer than 1.7):

* ``$ENV``/``env`` are empty in gojq: the harness shadows both with ``{}``.
* ``ltrimstr``/``rtrimstr`` error on non-string input in gojq (jq 1.7 returned the input
  unchanged): the harness redefines both to error, whatever the libjq version.
* Built-ins gojq lacks (``$__loc__``, ``input_line_number``, ``get_search_list``,
  ``get_jq_origin``, ``get_prog_origin``, ``input_filename``, ``keys_unsorted``,
  ``have_decnum``, ``have_literal_numbers``, ``toboolean``, ``trimstr``, ``lgamma_r``,
  ``debug``, ``stderr``) are rejected as compile errors.
* gojq sorts object keys: input is fed with sorted keys and results are marshalled like Go
  ``json.Marshal`` (sorted, ``<>&`` escaped). Objects a program *builds* keep insertion
  order in libjq, so their ``tojson``/``tostring`` can differ (gap).
* Numbers reach gojq as float64 (precision lost above 2^53; 1.0 is 1): input is normalised
  the same way. Big-integer arithmetic (gojq exact, jq float) is not modelled (gap).
* gojq allows ``"abc"[1]``, counts ``index`` in characters, binds unary minus tighter than
  ``as``, uses RE2 (no backreferences/look-around), forbids keywords as function names and
  has different time functions: the harness follows libjq there (gap).
* gojq int results (a literal, ``length``) are "missing" for secretInjectionConfigs
  (``ParseFloat`` wants float64); libjq cannot tell them apart, so they are stored (gap).
"""

from __future__ import annotations

import copy
import functools
import json
import re
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import httpx
import jq

Secrets = MutableMapping[tuple[str, str], dict[str, str]]
Action = Literal["create", "update", "delete", "none", "wait"]
Obj = dict[str, Any]

DEFAULT_METHODS = {"CREATE": "POST", "OBSERVE": "GET", "UPDATE": "PUT", "REMOVE": "DELETE"}
FINALIZER = "finalizer.managedresource.crossplane.io"
CREATE_PENDING = "crossplane.io/external-create-pending"
CREATE_SUCCEEDED = "crossplane.io/external-create-succeeded"
CREATE_FAILED = "crossplane.io/external-create-failed"
_NOT_FOUND, _GO_E_FORMAT, _GO_E_SMALL = 404, 1e21, 1e-6
_PLACEHOLDER = re.compile(r"\{\{\s*([^:{}\s]+):([^:{}\s]+):([^:{}\s]+)\s*\}\}")  # parser.go:24
_GOJQ_MISSING = re.compile(
    r"\$__loc__|(?<![.$\w])(get_jq_origin|get_prog_origin|get_search_list|input_line_number"
    r"|input_filename|keys_unsorted|have_decnum|have_literal_numbers|toboolean|trimstr"
    r"|lgamma_r|debug|stderr)\b(?!\s*:)"
)
_STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"')
_TRIM = (
    'def {name}($x): if type == "string" and ($x|type) == "string" then '
    "(if {test}($x) and ($x|length) > 0 then {slice} else . end) "
    'else error("{name} input and argument must be strings") end; '
)
_PRELUDE = (
    "def env: {}; "
    + _TRIM.format(name="ltrimstr", test="startswith", slice=".[($x|length):]")
    + _TRIM.format(name="rtrimstr", test="endswith", slice=".[:length - ($x|length)]")
    + "{} as $ENV | (\n"
)
_DURATION = re.compile(r"(\d+(?:\.\d*)?)(ns|us|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class ProviderError(Exception):
    """An error provider-http would return to the managed reconciler."""


class MappingNotFoundError(ProviderError):
    """No mapping for an action (``requestmapping/mapping.go:64``)."""


@dataclass
class HttpResponse:
    """An HTTP response, as provider-http's ``HttpResponse`` (``client.go:45-49``)."""

    status_code: int = 0
    body: str = ""
    headers: dict[str, list[str]] | None = None


@dataclass(frozen=True)
class ObserveResult:
    """What Observe tells the runtime (``request.go:207-237``)."""

    exists: bool
    up_to_date: bool


@dataclass(frozen=True)
class ReconcileResult:
    """What one managed-reconciler pass did; ``error`` is set when it failed."""

    action: Action
    exists: bool | None
    up_to_date: bool | None
    finalizer_removed: bool = False
    error: str | None = None


@dataclass
class _Generated:
    method: str
    url: str
    body: str  # "Encrypted": jq output before placeholder resolution (client.go:69-99).
    body_sent: str
    headers: dict[str, list[str]]
    headers_sent: dict[str, list[str]]

    def valid(self) -> bool:
        # request_generator.go:98-100: fmt.Sprint of {URL, body, headers} without "null".
        parts = [self.url, self.body, self.body_sent]
        for hdrs in (self.headers, self.headers_sent):
            parts += [f"{k}:{' '.join(v)}" for k, v in hdrs.items()]
        return self.url != "" and "null" not in " ".join(parts)


def get_mapping(for_provider: Obj, action: str) -> Obj:
    """Return the mapping for an action, with its effective ``method`` filled in.

    By ``action`` first, else by the action's default method (``mapping.go:19-24,50-65``).

    Raises:
        MappingNotFoundError: if neither lookup matches.
    """
    method = DEFAULT_METHODS.get(action, "GET")
    mappings = for_provider.get("mappings") or []
    for mapping in mappings:
        if mapping.get("action") == action:
            return {**mapping, "method": mapping.get("method") or method}
    for mapping in mappings:
        if mapping.get("method") == method:
            return dict(mapping)
    msg = f"{action} or {method} mapping doesn't exist in request, skipping operation"
    raise MappingNotFoundError(msg)


def go_json(value: Any) -> str:
    """Marshal like Go ``json.Marshal``: compact, sorted keys, ``<>&`` escaped."""
    if isinstance(value, dict):
        items = sorted(value.items())
        text = "{" + ",".join(f"{go_json(str(k))}:{go_json(v)}" for k, v in items) + "}"
    elif isinstance(value, list):
        text = "[" + ",".join(go_json(v) for v in value) + "]"
    elif isinstance(value, float) and value.is_integer() and abs(value) < _GO_E_FORMAT:
        text = str(int(value))  # encoding/json floatEncoder: 'f' unless tiny or huge
    elif isinstance(value, float) and _GO_E_SMALL <= abs(value) < _GO_E_FORMAT:
        text = format(Decimal(repr(value)), "f")
    elif isinstance(value, float):
        text = re.sub(r"e([+-])0(\d)$", r"e\1\2", repr(value))
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        for char in "<>&\u2028\u2029":
            text = text.replace(char, f"\\u{ord(char):04x}")
    else:
        text = json.dumps(value)
    return text


def _go_numbers(value: Any) -> Any:
    """Round-trip numbers through float64, as Go's ``json.Unmarshal`` into ``any`` does."""
    if isinstance(value, dict):
        return {k: _go_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_go_numbers(v) for v in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        return int(number) if number.is_integer() and abs(number) < _GO_E_FORMAT else number
    return value


def _no_constants(name: str) -> Any:
    msg = f"invalid JSON constant {name}"
    raise ValueError(msg)


def json_object(text: str) -> Obj | None:
    """Parse like ``json/util.go:31-41``: a JSON object (``null`` gives ``{}``), else None."""
    try:
        value = json.loads(text, parse_constant=_no_constants)
    except ValueError:
        return None
    return {} if value is None else _go_numbers(value) if isinstance(value, dict) else None


def _convert_json_strings(data: Obj) -> None:
    # json/util.go:44-59: JSON-object strings become objects; arrays are left alone.
    for key, value in data.items():
        if isinstance(value, str) and (parsed := json_object(value)) is not None:
            data[key] = parsed
        elif isinstance(value, dict):
            _convert_json_strings(value)


@functools.lru_cache(maxsize=512)
def _compile(program: str) -> Any:
    if _GOJQ_MISSING.search(_STRING_LITERAL.sub('""', program)):
        msg = f"function not defined in gojq: {program}"
        raise ValueError(msg)
    return jq.compile(_PRELUDE + program + "\n)")


def jq_first(program: str, data: Any) -> Any:
    """Return the first output of a jq program, as ``jq/parser.go:24-44``.

    Raises:
        ProviderError: on a parse or runtime error, or when there is no output.
    """
    try:
        return _compile(program).input_text(go_json(_go_numbers(data))).first()
    except (ValueError, StopIteration) as exc:
        msg = f"failed to parse given mapping - {program} jq error: {exc}"
        raise ProviderError(msg) from exc


def _jq_str(program: str, ctx: Obj) -> str:
    # request_processing.go:11-26: an object becomes Go JSON, a string is used as is.
    result = jq_first(program, ctx)
    if isinstance(result, dict | str):
        return go_json(result) if isinstance(result, dict) else result
    msg = f"failed to parse string: {result}"
    raise ProviderError(msg)


def _jq_header(program: str, ctx: Obj) -> str:
    # jq/parser.go:112-139: a jq failure keeps the literal; a non-string result is an error.
    try:
        result = jq_first(program, ctx)
    except ProviderError:
        return program
    if not isinstance(result, str):
        msg = f"failed to parse result on jq query: {result}"
        raise ProviderError(msg)
    return result


def _extract(data: Obj, program: str) -> str | None:
    # secret_patcher.go:95-144, jq/parser.go:150-169: null, no output, error, array = missing.
    try:
        value = jq_first(program, data)
    except ProviderError:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):  # strconv.FormatFloat(v, 'f', -1, 64)
        return format(Decimal(repr(float(value))).normalize(), "f")
    if isinstance(value, dict):
        return go_json(value)
    return value if isinstance(value, str) else None


def _url_valid(url: str) -> bool:
    # utils/validate.go:50-53: url.ParseRequestURI with a scheme and a host.
    match = re.match(r"[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)", url)
    host_ok = bool(match and match.group(1) and not re.search(r"\s", match.group(1)))
    return host_ok and not re.search(r"[\x00-\x1f\x7f]", url)


def _is_success(code: int) -> bool:
    return code in range(200, 300)  # utils/validate.go:29-31


def _is_http_error(code: int, allowed: list[int]) -> bool:
    return code in range(400, 600) and code not in allowed  # utils/validate.go:35-48


def _contains(container: Obj, containee: Obj) -> bool:
    # json/util.go:9-28: objects are compared as recursive subsets, the rest as equal JSON.
    for key, value in containee.items():
        other = container.get(key)
        if key not in container:
            return False
        if isinstance(value, dict):
            if not isinstance(other, dict) or not _contains(other, value):
                return False
        elif go_json(value) != go_json(other):
            return False
    return True


def _policies(request: Obj) -> set[str]:
    """spec.managementPolicies, with the CRD's default ["*"]."""
    found = (request.get("spec") or {}).get("managementPolicies")
    return set(found) if isinstance(found, list) else {"*"}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fp(request: Obj) -> Obj:
    return dict(request.get("spec", {}).get("forProvider", {}))


def _status(request: Obj) -> Obj:
    status: Obj = request.setdefault("status", {})
    return status


def _stored_response(request: Obj) -> HttpResponse:
    stored = _status(request).get("response") or {}
    code = int(stored.get("statusCode") or 0)
    return HttpResponse(code, stored.get("body") or "", stored.get("headers"))


def set_condition(request: Obj, ctype: str, status: str, reason: str, message: str = "") -> None:
    """Set a Crossplane condition (``Ready`` or ``Synced``) in ``status.conditions``."""
    conditions: list[Obj] = _status(request).setdefault("conditions", [])
    new = {"type": ctype, "status": status, "reason": reason, "lastTransitionTime": _now()}
    if message:
        new["message"] = message
    conditions[:] = [c for c in conditions if c.get("type") != ctype] + [new]


def _response_map(response: HttpResponse) -> Obj:
    # secret_patcher.go:82-89: {body, headers, statusCode}, JSON-object body converted.
    data: Obj = _go_numbers(
        {"body": response.body, "headers": response.headers, "statusCode": response.status_code}
    )
    _convert_json_strings(data)
    return data


def _mask(response: HttpResponse, value: str, placeholder: str) -> None:
    # secret_patcher.go:171-200 (v1.0.14): the quoted value in the body, bare in headers.
    stripped = value.strip()
    if len(stripped) > 1 and stripped[0] == "{" and stripped[-1] == "}":
        response.body = response.body.replace(value, f'"{placeholder}"')
    else:
        response.body = response.body.replace(f'"{value}"', f'"{placeholder}"')
    for values in (response.headers or {}).values():
        values[:] = [v.replace(value, placeholder) for v in values]


class ProviderHTTP:
    """provider-http's namespaced Request ExternalClient plus the managed reconciler."""

    def __init__(
        self,
        secrets: Secrets,
        http: httpx.Client,
        *,
        clock: Callable[[], float] = time.monotonic,
        authorization: str = "",
        create_grace_period: float = 30.0,
    ) -> None:
        """Build the executor.

        Args:
            secrets: ``(namespace, name) -> decoded data``; read for placeholders, written
                by secretInjectionConfigs (a missing Secret is created).
            http: the client for every request (``httpx.MockTransport`` in unit tests).
            clock: seconds, for the create grace period (xr-runtime ``reconciler.go:52``).
            authorization: ProviderConfig credential, sent as ``Authorization`` unless the
                request has one (``client.go:113-116``).
            create_grace_period: seconds after a Create during which !exists only waits.
        """
        self.secrets = secrets
        self.http = http
        self.clock = clock
        self.authorization = authorization
        self.create_grace_period = create_grace_period
        self.log: list[str] = []
        self.secret_metadata: dict[tuple[str, str], Obj] = {}

    # -- crossplane-runtime managed reconciler (xr-runtime reconciler.go:1116-1480) ---------
    def reconcile(  # noqa: PLR0911 - one return per branch of the reconciler.
        self, request: Obj, *, deleting: bool = False
    ) -> ReconcileResult:
        """Run one managed-reconciler pass: Observe, then Create/Update/Delete or nothing.

        ``deleting=True`` sets ``metadata.deletionTimestamp`` (sticky, like Kubernetes).
        Errors are not raised: they are returned in ``ReconcileResult.error`` and in the
        ``Synced`` condition.
        """
        meta = request.setdefault("metadata", {})
        if deleting and not meta.get("deletionTimestamp"):
            meta["deletionTimestamp"] = _now()
        try:
            obs = self.observe(request)
        except ProviderError as exc:  # reconciler.go:1116-1134
            message = f"cannot observe external resource: {exc}"
            set_condition(request, "Synced", "False", "ReconcileError", message)
            return ReconcileResult("none", None, None, error=str(exc))
        annotations = meta.setdefault("annotations", {})
        since_create = self.clock() - float(annotations.get(CREATE_SUCCEEDED, "nan"))
        if not obs.exists and since_create < self.create_grace_period:  # 1150-1155
            return ReconcileResult("wait", obs.exists, obs.up_to_date)
        finalizers = meta.setdefault("finalizers", [])
        if meta.get("deletionTimestamp"):  # reconciler.go:1163-1253
            return self._delete_or_finalize(request, obs, finalizers)
        if FINALIZER not in finalizers:  # reconciler.go:1272
            finalizers.append(FINALIZER)
        policies = _policies(request)
        if not obs.exists and policies & {"*", "Create"}:  # reconciler.go:1287-1408
            annotations[CREATE_PENDING] = repr(self.clock())
            set_condition(request, "Ready", "False", "Creating")
            return self._act(request, "create", obs, self.create)
        if obs.up_to_date:  # reconciler.go:1428-1446
            set_condition(request, "Synced", "True", "ReconcileSuccess")
            return ReconcileResult("none", exists=True, up_to_date=True)
        if not policies & {"*", "Update"}:  # reconciler.go:1453-1459: updates skipped
            set_condition(request, "Synced", "True", "ReconcileSuccess")
            return ReconcileResult("none", exists=obs.exists, up_to_date=obs.up_to_date)
        # Without Create, a resource Observe says is gone is updated (1287 is skipped).
        return self._act(request, "update", obs, self.update)  # reconciler.go:1462-1480

    def _delete_or_finalize(
        self, request: Obj, obs: ObserveResult, finalizers: list[str]
    ) -> ReconcileResult:
        if obs.exists and _policies(request) & {"*", "Delete"}:
            # Delete, then requeue; the finalizer stays until Observe says !exists.
            set_condition(request, "Ready", "False", "Deleting")
            return self._act(request, "delete", obs, self.remove)
        if FINALIZER in finalizers:
            finalizers.remove(FINALIZER)
        return ReconcileResult("none", exists=False, up_to_date=False, finalizer_removed=True)

    def _act(
        self, request: Obj, action: Action, obs: ObserveResult, call: Callable[[Obj], bool]
    ) -> ReconcileResult:
        annotations = request["metadata"]["annotations"]
        try:
            call(request)
        except ProviderError as exc:
            if action == "create":  # reconciler.go:1329
                annotations[CREATE_FAILED] = repr(self.clock())
            message = f"cannot {action} external resource: {exc}"
            set_condition(request, "Synced", "False", "ReconcileError", message)
            return ReconcileResult(action, obs.exists, obs.up_to_date, error=str(exc))
        if action == "create":  # reconciler.go:1369; an HTTP 4xx/5xx Create "succeeded" too.
            annotations[CREATE_SUCCEEDED] = repr(self.clock())
        set_condition(request, "Synced", "True", "ReconcileSuccess")
        return ReconcileResult(action, obs.exists, obs.up_to_date)

    # -- ExternalClient ----------------------------------------------------------------------
    def observe(self, request: Obj) -> ObserveResult:
        """Observe: ``observe.go:48-86`` then ``request.go:198-237``.

        Raises:
            ProviderError: whenever provider-http's Observe returns an error.
        """
        fp = _fp(request)
        mapping = get_mapping(fp, "OBSERVE")  # observe.go:50: a missing mapping is an error.
        stored, allowed = _stored_response(request), fp.get("allowedStatusCodes") or []
        last_method = (_status(request).get("requestDetails") or {}).get("method")
        not_created = stored.status_code == 0 or (  # observe.go:114-121
            last_method == "POST" and _is_http_error(stored.status_code, allowed)
        )
        try:
            gen = self._generate_valid(request, mapping)
        except ProviderError:
            if not_created:  # observe.go:60-67
                return ObserveResult(exists=False, up_to_date=False)
            raise
        response, error = self._send(gen, fp)
        if not_created and not _is_success(response.status_code):  # observe.go:73-77
            return ObserveResult(exists=False, up_to_date=False)
        if self._is_removed(fp, response):  # observe.go:78-80, request.go:207-211
            return ObserveResult(exists=False, up_to_date=False)
        self._inject(request, response)  # observe.go:83-84: no deletion guard here.
        synced = self._is_up_to_date(request, fp, response)  # observe.go:85
        set_condition(request, "Ready", "True", "Available")  # request.go:227, even on 5xx.
        self._set_status(request, gen, response, error, reset=synced)  # request.go:222-228
        return ObserveResult(exists=True, up_to_date=synced)

    def create(self, request: Obj) -> bool:
        """Create via ``DeployAction`` (CREATE); False if there is no mapping (no-op)."""
        return self._deploy(request, "CREATE")

    def update(self, request: Obj) -> bool:
        """Update via ``DeployAction`` (UPDATE); False if there is no mapping (no-op)."""
        return self._deploy(request, "UPDATE")

    def remove(self, request: Obj) -> bool:
        """Delete via ``DeployAction`` (REMOVE); False if there is no mapping (no-op)."""
        return self._deploy(request, "REMOVE")

    def _deploy(self, request: Obj, action: str) -> bool:
        # Mirrors deployaction.go:13-43.
        fp = _fp(request)
        try:
            mapping = get_mapping(fp, action)
        except MappingNotFoundError as exc:  # deployaction.go:15-19: logged, returns nil.
            self.log.append(str(exc))
            return False
        gen = self._generate_valid(request, mapping)  # a templating error fails the action.
        response, error = self._send(gen, fp)
        if not request.get("metadata", {}).get("deletionTimestamp"):  # deployaction.go:28-35
            self._inject(request, response)
        self._set_status(request, gen, response, error, reset=False)  # deployaction.go:37-42
        return True

    # -- Observe checks ------------------------------------------------------------------------
    def _is_removed(self, fp: Obj, response: HttpResponse) -> bool:
        check = fp.get("isRemovedCheck") or {}
        if check.get("type") != "CUSTOM":  # is_deleted_check.go:26-32,68-79: DEFAULT is 404.
            return response.status_code == _NOT_FOUND
        return self._custom_check(fp, response, check.get("logic", ""), "isRemovedCheck")

    def _is_up_to_date(self, request: Obj, fp: Obj, response: HttpResponse) -> bool:
        check = fp.get("expectedResponseCheck") or {}
        if check.get("type") == "CUSTOM":  # is_synced_check.go:116-134
            logic = check.get("logic", "")
            return self._custom_check(fp, response, logic, "ExpectedResponseCheck")
        try:  # is_synced_check.go:29-39,100-110,138-140: desired = templated UPDATE body.
            desired = self._generate_valid(request, get_mapping(fp, "UPDATE")).body_sent
        except MappingNotFoundError:
            return True
        body, desired = self._patch(response.body), self._patch(desired)  # 62-69
        body_obj, desired_obj = json_object(body), json_object(desired)
        if body_obj is not None and desired_obj is not None:  # is_synced_check.go:72-97
            return _contains(body_obj, desired_obj) and _is_success(response.status_code)
        if body_obj is None and desired_obj is not None:
            msg = f"response body is not a valid JSON string: {body}"
            raise ProviderError(msg)
        if body_obj is not None:
            msg = f"PUT mapping result is not a valid JSON string: {desired}"
            raise ProviderError(msg)
        return desired in body and _is_success(response.status_code)

    def _custom_check(self, fp: Obj, response: HttpResponse, logic: str, name: str) -> bool:
        # observe/jq_check.go:24-47: jq on the *current* response, masked values resolved.
        try:
            ctx = self._context(fp, self._patch_response(response))
            result = jq_first(self._patch(" ".join(logic.split())), ctx)
        except ProviderError as exc:
            result = exc
        if not isinstance(result, bool):
            msg = f"{name}.Logic JQ filter should return a boolean, but returned error: {result}"
            raise ProviderError(msg)
        return result

    # -- templating (requestgen/request_generator.go) ------------------------------------------
    def _generate_valid(self, request: Obj, mapping: Obj) -> _Generated:
        fp, stored = _fp(request), _stored_response(request)
        try:  # request_generator.go:84-87
            gen = self._generate(mapping, fp, stored)
            if gen.valid():
                return gen
        except ProviderError:
            pass
        # request_generator.go:89-94. The namespaced "cache" is status.response itself
        # (spec_accessors.go:162-167), so this mostly repeats the same (invalid) request.
        return self._generate(mapping, fp, stored if stored.status_code else None)

    def _generate(self, mapping: Obj, fp: Obj, stored: HttpResponse | None) -> _Generated:
        ctx = self._context(fp, None if stored is None else self._patch_response(stored))
        url = _jq_str(mapping.get("url", ""), ctx)  # 111-118: never placeholder-patched
        if not _url_valid(url):
            msg = f"invalid url {url}"
            raise ProviderError(msg)
        raw = mapping.get("body") or ""  # 121-144: whitespace collapsed, patched after jq
        body = _jq_str(" ".join(raw.split()), ctx) if raw else ""
        source = mapping.get("headers")  # 103-108: mapping headers replace spec headers
        source = (fp.get("headers") or {}) if source is None else source
        headers = {k: [_jq_header(v, ctx) for v in vs] for k, vs in source.items()}
        sent = {k: [self._patch(v) for v in vs] for k, vs in headers.items()}  # 147-161
        method = mapping.get("method") or "GET"
        return _Generated(method, url, body, self._patch(body), headers, sent)

    def _context(self, fp: Obj, response: HttpResponse | None) -> Obj:
        # request_generator.go:56-72: forProvider + .response (omitempty; headers forced).
        ctx = copy.deepcopy(fp)
        for key in ("payload", "expectedResponseCheck", "isRemovedCheck"):
            ctx.setdefault(key, {})
        ctx["response"] = None
        if response is not None:
            ctx["response"] = {"headers": response.headers or None}
            if response.status_code:
                ctx["response"]["statusCode"] = response.status_code
            if response.body:
                ctx["response"]["body"] = response.body
        result: Obj = _go_numbers(ctx)
        _convert_json_strings(result)
        return result

    def _patch(self, text: str) -> str:
        # data-patcher/parser.go:61-86: a missing Secret is an error, a missing key is "".
        found = {m.group(0): m.groups() for m in _PLACEHOLDER.finditer(text)}
        for placeholder, (name, namespace, key) in found.items():
            secret = self.secrets.get((namespace, name))
            if secret is None:
                msg = f'failed to patch secret, secrets "{name}" not found ({namespace})'
                self.log.append(msg)
                raise ProviderError(msg)
            text = text.replace(placeholder, secret.get(key, ""))
        return text

    def _patch_response(self, response: HttpResponse) -> HttpResponse:
        # data-patcher/patch.go:25-46
        headers = {k: [self._patch(v) for v in vs] for k, vs in (response.headers or {}).items()}
        return HttpResponse(response.status_code, self._patch(response.body), headers)

    # -- HTTP (clients/http/client.go:87-167) --------------------------------------------------
    def _send(self, gen: _Generated, fp: Obj) -> tuple[HttpResponse, str | None]:
        headers = [(k, v) for k, vs in gen.headers_sent.items() for v in vs]
        if self.authorization and all(k.lower() != "authorization" for k, _ in headers):
            headers.append(("Authorization", self.authorization))
        wait = str(fp.get("waitTimeout") or "5m")  # utils/retry.go:10,29-34
        timeout = sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(wait)) or None
        try:
            resp = self.http.request(
                gen.method,
                gen.url,
                content=gen.body_sent.encode() or None,
                headers=headers,
                timeout=timeout,
                follow_redirects=True,  # like Go's default http.Client
            )
        except (httpx.HTTPError, httpx.InvalidURL) as exc:  # Go's *url.Error text
            return HttpResponse(), f'{gen.method.capitalize()} "{gen.url}": {exc}'
        resp_headers: dict[str, list[str]] = {}
        for key, value in resp.headers.multi_items():  # Go canonical header keys
            canonical = "-".join(p[:1].upper() + p[1:].lower() for p in key.split("-"))
            resp_headers.setdefault(canonical, []).append(value)
        body = resp.content.decode("utf-8", "replace")
        return HttpResponse(resp.status_code, body, resp_headers), None

    # -- status (statushandler/status.go, utils/set_status.go, status_setters.go) --------------
    def _set_status(
        self,
        request: Obj,
        gen: _Generated,
        response: HttpResponse,
        error: str | None,
        *,
        reset: bool,
    ) -> None:
        status, fp = _status(request), _fp(request)
        if error is not None:  # status.go:38-41,68-75: transport error, only error/failed.
            status["failed"] = int(status.get("failed") or 0) + 1
            status["error"] = error
            raise ProviderError(error)
        stored = status["response"] = dict(status.get("response") or {})
        if response.status_code:  # set_status.go:28-50: zero values are skipped.
            stored["statusCode"] = response.status_code
        stored.pop("headers", None)  # a Go empty map is omitted on write
        if response.headers:
            stored["headers"] = copy.deepcopy(response.headers)
        if response.body:
            stored["body"] = response.body
        details = {"method": gen.method, "url": gen.url, "body": gen.body, "headers": gen.headers}
        status["requestDetails"] = copy.deepcopy({k: v for k, v in details.items() if v})
        success = _is_success(response.status_code)
        if reset or (success and gen.method != "GET"):  # request.go:222-225, status.go:89-92
            status.pop("failed", None)
            status.pop("error", None)
        if _is_http_error(response.status_code, fp.get("allowedStatusCodes") or []):
            status["failed"] = int(status.get("failed") or 0) + 1  # status.go:52-54,78-87
        elif success and self._should_cache(fp, response):  # status.go:94-111
            cached = {"statusCode": response.status_code, "body": response.body}
            cached["headers"] = response.headers
            cached = copy.deepcopy({k: v for k, v in cached.items() if v})
            status["cache"] = {"lastUpdated": _now(), "response": cached}

    def _should_cache(self, fp: Obj, response: HttpResponse) -> bool:
        try:
            return all(self._generate(m, fp, response).valid() for m in fp.get("mappings") or [])
        except ProviderError:
            return False

    # -- secretInjectionConfigs (data-patcher/patch.go:84-166, secret_patcher.go) ---------------
    def _inject(self, request: Obj, response: HttpResponse) -> None:
        original = _response_map(response)  # patch.go:136-142: jq reads the unmasked copy.
        for config in _fp(request).get("secretInjectionConfigs") or []:
            ref = config.get("secretRef") or {}
            key = (ref.get("namespace", ""), ref.get("name", ""))
            data = dict(self.secrets.get(key) or {})  # GetOrCreateSecret (client.go:40-60)
            self.secrets[key] = data
            mappings = config.get("keyMappings")
            if mappings is None:  # patch.go:110-121: deprecated fields, strategy delete.
                path = config.get("responsePath", "")
                mappings = [{"secretKey": config.get("secretKey", ""), "responseJQ": path}]
            for mapping in mappings:
                secret_key = mapping.get("secretKey", "")
                value = _extract(original, mapping.get("responseJQ", ""))
                strategy = mapping.get("missingFieldStrategy", "delete")  # CRD default
                if value is not None:  # secret_patcher.go:152-167
                    data[secret_key] = value
                elif strategy == "setEmpty":
                    data[secret_key] = ""
                elif strategy == "delete":
                    data.pop(secret_key, None)
                if value:  # secret_patcher.go:171-194: mask in status
                    _mask(response, value, f"{{{{{key[1]}:{key[0]}:{secret_key}}}}}")
                self.secrets[key] = dict(data)  # secret_patcher.go:78: one Update per mapping
            # secret_patcher.go:26-56,208-246: every label/annotation not listed is stripped,
            # so the Secret ends with exactly these (jq-valued entries are not evaluated here).
            metadata = config.get("metadata") or {}
            self.secret_metadata[key] = {
                kind: dict(metadata.get(kind) or {}) for kind in ("labels", "annotations")
            }
