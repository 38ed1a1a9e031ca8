"""The provider-http Request that creates, observes, updates and deletes one key.

- `litellm_fields(spec)`: the VirtualKey spec in LiteLLM's field names.
- `key_payload(...)` and `build_request(...)`: what one key's Request carries,
  and the whole `http.m.crossplane.io/v1alpha2` Request.
- `OBSERVE_IS_REMOVED`, `EXPECTED_RESPONSE`, `ECHO_KEY_JQ`: the jq programs.

Design rules, each from provider-http's source (see
../shared/docs/provider-http-request.md and docs/design.md):

- Every URL and body is templated from `.payload` only, never from
  `.response`: the stored response is whatever answered last (§1.6, §8.5).
- Every mapping sets `action` and `method`: LiteLLM writes are all POSTs (§1.2).
- The key is named by its token everywhere; the raw key appears only in
  the CREATE body, as a secret placeholder resolved after jq (§3).
- `/key/generate` echoes the raw key. An injection config copies it into a
  provider-owned Secret so that provider-http masks it in status (§4); its
  jq returns null for every other response and the strategy is `preserve`.
- The up-to-date check is CUSTOM, since `/key/info` nests fields under
  `info` (§1.3 step 8). A non-200 OBSERVE counts as up to date: with the
  proxy down or the master key wrong, an UPDATE could only fail and then
  flip the Request back to "not created" (§1.6).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from function.composed import only_set
from function.keys.spec import RESERVED_METADATA_KEYS, VirtualKeySpec
from function.provider_http import mask
from function.provider_http.answers import payload_of
from function.provider_http.request import GUARDS, Place, http_request
from function.tenancy.decide import Authorization

# Once the key has existed, provider-http must never create it again: a key
# an admin deletes on the proxy (a revocation) would come back with the same
# value from the Secret. crossplane-runtime supports no management policy
# with Observe, Update and Delete but not Create, so the CREATE mapping
# itself changes: it reads the key (GET /key/info) instead of making it.
# That answer, stored in status, tells the function the key is gone, and
# the function issues a new key.

# /key/info answers 404 for a token it never knew, and 200 with
# info.status "deleted" for one that was deleted.
OBSERVE_IS_REMOVED = (
    f"{GUARDS} | $r.statusCode == 404 or ($r.statusCode == 200"
    ' and ($r.body | obj | .info | obj | .status) == "deleted")'
)

# LiteLLM adds these to a key's metadata itself; the spec may not set them.
_LITELLM_METADATA_KEYS = ", ".join(f'"{k}"' for k in RESERVED_METADATA_KEYS)

EXPECTED_RESPONSE = (
    f"{GUARDS} | if $r.statusCode != 200"
    ' or ($r.body | type) != "object"'
    ' or ($r.body.info | type) != "object" then true'
    " else $r.body.info as $live | (.payload | obj | .body | obj) as $p"
    " | ($p.fields | obj | to_entries | all("
    ' if .key == "models" then (.value | arr | sort) == ($live.models | arr | sort)'
    ' elif .key == "tags" then (.value | arr | sort)'
    ' == ((if ($live.tags | type) == "array" then $live.tags'
    " else ($live.metadata | obj | .tags) end) | arr | sort)"
    ' elif .key == "soft_budget"'
    " then .value == ($live.litellm_budget_table | obj | .soft_budget)"
    ' elif .key == "blocked" then .value == ($live.blocked == true)'
    ' elif .key == "metadata" then .value == ($live.metadata | obj'
    f" | with_entries(select(.key | IN({_LITELLM_METADATA_KEYS}) | not)))"
    " else .value == $live[.key] end))"
    # A rotated-out key is given an expiry once (updateOnly.duration): LiteLLM
    # keeps `expires`, not the duration, so it is done once one is set.
    " and (($p.updateOnly | obj | .duration) == null or $live.expires != null) end"
)

_INFO_URL = '(.payload.baseUrl + "/key/info?key=" + .payload.body.token)'
READ_INSTEAD_OF_CREATE = {"action": "CREATE", "method": "GET", "url": _INFO_URL}

# Only the /key/generate answer carries a raw key (sk-...): /key/info and
# /key/update echo the token, error bodies carry none.
ECHO_KEY_JQ = (
    'if .statusCode == 200 and (.body | type) == "object"'
    ' and (.body.key | type) == "string" and (.body.key | startswith("sk-"))'
    " then .body.key else null end"
)


def _dollars(value: str) -> float:
    # LiteLLM keeps budgets as floats; Decimal keeps "0.1" from becoming 0.1000000001.
    return float(Decimal(value))


def litellm_fields(
    spec: VirtualKeySpec, granted: Authorization, provenance: dict[str, str] | None = None
) -> dict[str, Any]:
    """The fields LiteLLM keeps in step with the spec, by their LiteLLM names.

    A field the user left out is not managed, except `models`: absent means
    all models, which LiteLLM spells as an empty list. Team and user are the
    ones the tenancy policy granted, which may be a team it binds. The
    `provenance` stamp (function.provenance) joins the spec's metadata, so
    metadata is always managed once there is a stamp.
    """
    fields: dict[str, Any] = {"key_alias": spec.key_alias, "models": list(spec.models)}
    optional: dict[str, Any] = {
        "max_budget": None if spec.max_budget is None else _dollars(spec.max_budget),
        "soft_budget": None if spec.soft_budget is None else _dollars(spec.soft_budget),
        "budget_duration": spec.budget_duration,
        "blocked": spec.blocked,
        "tpm_limit": spec.tpm_limit,
        "rpm_limit": spec.rpm_limit,
        "max_parallel_requests": spec.max_parallel_requests,
        "metadata": {**spec.metadata, **provenance}
        if provenance
        else (dict(spec.metadata) if "metadata" in spec.model_fields_set else None),
        "tags": list(spec.tags) if "tags" in spec.model_fields_set else None,
        "team_id": granted.team_id,
        "user_id": granted.user_id,
    }
    fields.update(only_set(optional))
    return fields


def create_only_fields(spec: VirtualKeySpec, carried_spend: str | None = None) -> dict[str, Any]:
    """Fields sent only to /key/generate.

    `duration` sets the expiry relative to now: sent again on every update it
    would push the expiry out each time, so the XRD makes it immutable.
    `spend` is what the key this one replaces had spent (function.keys.rotation):
    sent once, so that a new key starts where the old one was, and never
    again, which would undo the spend counted since.
    """
    fields: dict[str, Any] = {"duration": spec.duration} if spec.duration else {}
    if carried_spend is not None and Decimal(carried_spend) > 0:
        fields["spend"] = _dollars(carried_spend)
    return fields


def key_payload(  # noqa: PLR0913 - each argument is one independent fact.
    spec: VirtualKeySpec,
    granted: Authorization,
    token: str,
    *,
    created: bool = False,
    provenance: dict[str, str] | None = None,
    carried_spend: str | None = None,
    overrides: dict[str, Any] | None = None,
    update_only: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What one key's Request carries: its token, the managed fields and the one-off ones.

    `created`: the key has existed on the proxy, so CREATE only reads it.
    `overrides` replace managed fields (a rotated-out key's alias and budget).
    `update_only` is sent with UPDATE and never compared (a retired key's expiry).
    """
    payload: dict[str, Any] = {
        "token": token,
        "fields": {**litellm_fields(spec, granted, provenance), **(overrides or {})},
        "createOnly": create_only_fields(spec, carried_spend),
    }
    if update_only:
        payload["updateOnly"] = update_only
    if created:
        payload["created"] = True
    return payload


def build_request(
    *, name: str, place: Place, payload: dict[str, Any], key_secret: str, mask_namespace: str
) -> dict[str, Any]:
    """The Request for one key, fully determined by its arguments."""
    return http_request(
        name=name,
        place=place,
        payload=payload,
        mappings=_mappings(
            created=payload.get("created") is True, key_secret=key_secret, namespace=place.namespace
        ),
        is_removed=OBSERVE_IS_REMOVED,
        expected=EXPECTED_RESPONSE,
        extra={"secretInjectionConfigs": [_masking(name, place.namespace, mask_namespace)]},
    )


def _mappings(*, created: bool, key_secret: str, namespace: str) -> list[dict[str, str]]:
    """CREATE (or, once the key existed, a read), OBSERVE, UPDATE and REMOVE of one key."""
    raw_key = f"{{{{ {key_secret}:{namespace}:key }}}}"
    create = (
        READ_INSTEAD_OF_CREATE
        if created
        else {
            "action": "CREATE",
            "method": "POST",
            "url": '(.payload.baseUrl + "/key/generate")',
            "body": f'(.payload.body.fields + .payload.body.createOnly + {{"key": "{raw_key}"}})',
        }
    )
    return [
        create,
        {"action": "OBSERVE", "method": "GET", "url": _INFO_URL},
        {
            "action": "UPDATE",
            "method": "POST",
            "url": '(.payload.baseUrl + "/key/update")',
            "body": (
                '(.payload.body.fields + (.payload.body.updateOnly | if type == "object"'
                ' then . else {} end) + {"key": .payload.body.token})'
            ),
        },
        {
            "action": "REMOVE",
            "method": "POST",
            "url": '(.payload.baseUrl + "/key/delete")',
            "body": '({"keys": [.payload.body.token]})',
        },
    ]


def _masking(name: str, namespace: str, mask_namespace: str) -> dict[str, Any]:
    """The injection that masks /key/generate's echo of the key in the Request's status.

    Its Secret lives where tenants cannot write (function.provider_http.mask):
    deleted, it would leave the Request unable to make any call, REMOVE too.
    """
    return {
        "secretRef": {"name": mask.secret_name(namespace, name), "namespace": mask_namespace},
        "setOwnerReference": False,
        "keyMappings": [
            {"secretKey": "key", "responseJQ": ECHO_KEY_JQ, "missingFieldStrategy": "preserve"}
        ],
    }


def created_once(request: dict[str, Any] | None) -> bool:
    """Whether an observed Request's CREATE only reads, because its key existed."""
    return payload_of(request).get("created") is True


def token_in_request(request: dict[str, Any]) -> str | None:
    """The token an observed Request manages, read back from its payload."""
    token = payload_of(request).get("token")
    return token if isinstance(token, str) else None
