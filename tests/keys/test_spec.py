"""Malformed VirtualKeys and function inputs each get one clean Fatal result, never a crash.

What `function.keys.spec` and `function.input` refuse, in `function.validation`'s
words, as a person sees it.

Three parts, all over the function's real gRPC server (`function_server`):

- A seeded generator of a few thousand malformed VirtualKeys and inputs. Each
  case knows which field it broke, and the Fatal message must name that
  field. Nothing may be composed (Crossplane then applies and deletes
  nothing) and no raw key may leak into the message.
- Hand-written cases with the message fragments a person needs to fix them.
- Valid edge cases that must not be Fatal.

A failing generated case is reproducible alone: `make_case(index)`.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import random
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function.composed import owner_of
from function.keys.secrets import token_of
from function.validation import (
    DNS_LABEL_PATTERN,
    DNS_SUBDOMAIN_PATTERN,
    DOLLARS_PATTERN,
    DURATION_PATTERN,
    KEY_ALIAS_PATTERN,
)
from tests.conftest import load_example
from tests.fixtures import legacy_xr
from tests.grpc_harness import FunctionServer, make_request

SEED = 20_251_128
CASES = 3000
CHUNK = 100
# The composition's input, as the platform team ships it.
COMPOSITION_INPUT: dict[str, Any] = {
    "apiVersion": "litellm.fn.crossplane.io/v1beta1",
    "kind": "Input",
    "providerConfigRef": {"kind": "ClusterProviderConfig", "name": "litellm"},
    "requestTimeout": "30s",
}
# A key of the shape the function makes, kept in the observed Secret.
OBSERVED_KEY = "sk-" + "ObservedKey0123456789abcdefghijklmnopqrstu"
RAW_KEY = re.compile(r"sk-[A-Za-z0-9_\-]{20,}")
# metav1.Condition caps messages at 32 KiB; a Fatal message ends up in one.
MAX_MESSAGE = 32_768


# --- building blocks ------------------------------------------------------------------


def observed_secret(key: str = OBSERVED_KEY) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "example-service-litellm-key", "namespace": "team-a"},
        "type": "Opaque",
        "data": {"key": base64.b64encode(key.encode()).decode()},
    }


def observed_request(key: str = OBSERVED_KEY) -> dict[str, Any]:
    token = token_of(key)
    body = json.dumps({"token": token, "fields": {}, "createOnly": {}})
    return {
        "apiVersion": "http.m.crossplane.io/v1alpha2",
        "kind": "Request",
        "metadata": {"name": f"example-service-{token[:8]}", "namespace": "team-a"},
        "spec": {"forProvider": {"payload": {"baseUrl": "http://x:4000", "body": body}}},
        "status": {
            "response": {"statusCode": 200, "body": json.dumps({"key": key, "info": {}})},
            "requestDetails": {"url": f"http://x:4000/key/info?key={token}"},
        },
    }


def observed_state(kind: str) -> dict[str, dict[str, Any]]:
    token = token_of(OBSERVED_KEY)
    return {
        "none": {},
        "secret": {"key": observed_secret()},
        "steady": {"key": observed_secret(), f"request-{token[:10]}": observed_request()},
    }[kind]


def seed_virtualkey() -> dict[str, Any]:
    return copy.deepcopy(load_example("virtualkey/virtualkey.yaml"))


def explicit_xr() -> dict[str, Any]:
    return copy.deepcopy(load_example("virtualkey/virtualkey-explicit.yaml"))


def call(server: FunctionServer, req: fnv1.RunFunctionRequest) -> fnv1.RunFunctionResponse:
    try:
        return server.run(req)
    except grpc.RpcError as e:  # pragma: no cover - only on a bug
        pytest.fail(f"RunFunction failed with a gRPC error: {e}")


def fatal_message(rsp: fnv1.RunFunctionResponse) -> str:
    """The single Fatal result's message; fails unless that is all there is."""
    results = [(r.severity, r.message) for r in rsp.results]
    assert len(results) == 1, results
    severity, message = results[0]
    assert severity == fnv1.SEVERITY_FATAL, results
    assert len(rsp.desired.resources) == 0, list(rsp.desired.resources)
    return str(message)


# --- value generators -----------------------------------------------------------------

_JUNK_ALPHABET = (
    string.ascii_letters
    + string.digits
    + " _-./@:{}[]()!?#%&*+=,;'\"\\|~`$^<>"
    + "\x00\x01\x07\t\n\r\x1b\x7f"
    + "äöüßéñ中文字ключ🙂\u200b\u202e\ufeff\u00a0\u0661\u0662"
)


def junk_string(rng: random.Random, max_len: int = 40) -> str:
    return "".join(rng.choice(_JUNK_ALPHABET) for _ in range(rng.randint(0, max_len)))


def not_matching(
    rng: random.Random, pattern: str, extra: Callable[[str], bool] | None = None
) -> str:
    """A random string that does not match `pattern` (or that `extra` refuses)."""
    while True:
        value = junk_string(rng, rng.choice((3, 12, 40, 300)))
        if re.fullmatch(pattern, value) is None or (extra is not None and not extra(value)):
            return value


def wrong_type(rng: random.Random, *, keep: tuple[type, ...] = ()) -> Any:
    """A JSON value of some type not in `keep` (bool is its own type here)."""
    choices: list[Any] = [
        "text",
        "",
        1.5,
        -7.25,
        True,
        False,
        [],
        ["a", "b"],
        [1, 2],
        {},
        {"a": "b"},
        {"nested": {"deeper": ["x"]}},
    ]
    kept = [c for c in choices if type(c) not in keep]
    return copy.deepcopy(rng.choice(kept))


def placeholder(rng: random.Random) -> str:
    return rng.choice(
        [
            "{{ a:b:c }}",
            "{{litellm-example-secrets:litellm:masterkey}}",
            "x{{ y",
            "{{",
            "pre {{ kube-system:token:key }} post",
        ]
    )


def deep(rng: random.Random, depth: int) -> Any:
    # Protobuf's Python runtime parses at most 100 nested messages, and each
    # JSON level is two (Struct, Value); Kubernetes' structural schema would
    # prune such nesting under this XRD anyway. Stay well below.
    value: Any = junk_string(rng, 5)
    for _ in range(depth):
        value = {"k": value} if rng.random() < 0.5 else [value]
    return value


# --- mutations --------------------------------------------------------------------------


@dataclass
class Broken:
    """What one mutation broke: fragments the Fatal message must contain.

    Mutations in SPEC_MUTATIONS break one field each, and pydantic reports all
    such errors together, so they combine; OTHER_MUTATIONS stop validation at
    their own stage (input, owner, model checks, connection) and run alone.
    """

    paths: tuple[str, ...]


@dataclass
class Case:
    name: str
    xr: dict[str, Any]
    fn_input: dict[str, Any] | None
    observed: dict[str, dict[str, Any]]
    paths: tuple[str, ...]
    extra: dict[str, Any] = field(default_factory=dict)


Mutation = Callable[[random.Random, dict[str, Any], dict[str, Any]], Broken]
SPEC_MUTATIONS: dict[str, Mutation] = {}
OTHER_MUTATIONS: dict[str, Mutation] = {}


def spec_mutation(name: str) -> Callable[[Mutation], Mutation]:
    def register(fn: Mutation) -> Mutation:
        SPEC_MUTATIONS[name] = fn
        return fn

    return register


def other_mutation(name: str) -> Callable[[Mutation], Mutation]:
    def register(fn: Mutation) -> Mutation:
        OTHER_MUTATIONS[name] = fn
        return fn

    return register


def _no_dots(value: str) -> bool:
    return ".." not in value


@spec_mutation("keyAlias")
def _key_alias(rng: random.Random, xr: dict[str, Any], _: dict[str, Any]) -> Broken:
    spec = xr["spec"]
    choice = rng.randrange(6)
    if choice == 0:
        del spec["keyAlias"]
    elif choice == 1:
        spec["keyAlias"] = wrong_type(rng, keep=(str,))
    elif choice == 2:
        spec["keyAlias"] = rng.choice(
            ["", "a", "-ab", "ab-", "a b", "a..b", "ключ", "a\x00b", "ab\n", "x" * 256]
        )
    elif choice == 3:
        spec["keyAlias"] = placeholder(rng)
    else:
        spec["keyAlias"] = not_matching(rng, KEY_ALIAS_PATTERN, _no_dots)
    return Broken(("spec.keyAlias",))


def _dollars(name: str) -> Mutation:
    def mutate(rng: random.Random, xr: dict[str, Any], _: dict[str, Any]) -> Broken:
        choice = rng.randrange(5)
        value: Any
        if choice == 0:  # a float with a fraction has no exact binary form
            value = rng.choice([0.5, 0.1, 10.25, -1.5, 1e-7, 3.3333])
        elif choice == 1:
            value = rng.choice([-1, -(10**6), 10**13, 10**15, 2**53])
        elif choice == 2:
            value = rng.choice(
                ["-1", "1e3", "0.1234567", "01", "1.", ".5", "10,5", "$10", " 10", "10\n", "∞"]
            )
        elif choice == 3:
            value = wrong_type(rng, keep=(str, int, float))
        else:
            value = not_matching(rng, DOLLARS_PATTERN)
        xr["spec"][name] = value
        return Broken((f"spec.{name}",))

    return mutate


spec_mutation("maxBudget")(_dollars("maxBudget"))
spec_mutation("softBudget")(_dollars("softBudget"))


def _duration(name: str) -> Mutation:
    def mutate(rng: random.Random, xr: dict[str, Any], _: dict[str, Any]) -> Broken:
        choice = rng.randrange(4)
        value: Any
        if choice == 0:
            value = rng.choice(
                ["0d", "0s", "00d", "1y", "1", "d", "-1d", "1000000d", "1.5h", "30 d", "1d\n"]
            )
        elif choice == 1:
            value = rng.choice(["\u0661d", "1D", "1M", "1mon", "1dd", "1h30m", "P1D", ""])
        elif choice == 2:
            value = wrong_type(rng, keep=(str,)) if rng.random() < 0.7 else rng.choice([30, 0])
        else:
            value = not_matching(rng, DURATION_PATTERN)
        xr["spec"][name] = value
        return Broken((f"spec.{name}",))

    return mutate


spec_mutation("budgetDuration")(_duration("budgetDuration"))
spec_mutation("duration")(_duration("duration"))


def _count(name: str, minimum: int) -> Mutation:
    def mutate(rng: random.Random, xr: dict[str, Any], _: dict[str, Any]) -> Broken:
        # Not bools or numeric strings: pydantic's lax mode takes those (see report).
        value = rng.choice(
            [
                minimum - 1,
                -(10**9),
                1.5,
                0.25,
                2**53 + 2,
                1e20,
                1e300,
                "abc",
                "",
                "1e3",
                [],
                [1],
                {},
                {"a": 1},
            ]
        )
        xr["spec"][name] = value
        return Broken((f"spec.{name}",))

    return mutate


spec_mutation("tpmLimit")(_count("tpmLimit", 0))
spec_mutation("rpmLimit")(_count("rpmLimit", 0))
spec_mutation("maxParallelRequests")(_count("maxParallelRequests", 1))


@spec_mutation("blocked")
def _blocked(rng: random.Random, xr: dict[str, Any], _: dict[str, Any]) -> Broken:
    # Not "yes"/"true"/1/0: pydantic's lax mode reads those as booleans.
    xr["spec"]["blocked"] = rng.choice(["maybe", "", "blocked", 2, 0.5, -1, [], [True], {}])
    return Broken(("spec.blocked",))


def _string_list(name: str, max_items: int) -> Mutation:
    def mutate(rng: random.Random, xr: dict[str, Any], _: dict[str, Any]) -> Broken:
        choice = rng.randrange(6)
        value: Any
        if choice == 0:
            value = rng.choice(["gpt-4o", 5, 1.5, True, {"gpt-4o": True}, {}])
        elif choice == 1:
            value = [rng.choice([5, 1.5, False, None, [], {}, [""], {"a": "b"}])]
        elif choice == 2:
            value = rng.choice([[""], ["a", "a"], ["x" * 257], ["ok", "", "fine"]])
        elif choice == 3:
            value = [f"m{i}" for i in range(max_items + 1 + rng.randrange(50))]
        elif choice == 4:
            value = [deep(rng, rng.randint(1, 30))]
        else:
            value = ["ok", "x" * rng.randint(257, 5000)]
        xr["spec"][name] = value
        return Broken((f"spec.{name}",))

    return mutate


spec_mutation("models")(_string_list("models", 200))
spec_mutation("tags")(_string_list("tags", 64))


@spec_mutation("rotation")
def _rotation(rng: random.Random, xr: dict[str, Any], _: dict[str, Any]) -> Broken:
    bad: dict[str, list[Any]] = {
        "every": ["30 days", "0d", "1y", "", "-1h", 30, [], placeholder(rng)],
        "gracePeriod": ["1 hour", "0s", "forever", 3600, {}, placeholder(rng)],
        "trigger": [-1, 1.5, "one", [], {}],
        "gracePeriodBudget": ["-1", "1e3", "abc", "0.1234567", [], placeholder(rng)],
    }
    choice = rng.randrange(len(bad) + 2)
    if choice == len(bad):
        xr["spec"]["rotation"] = rng.choice(["30d", 5, ["30d"], True])
        return Broken(("spec.rotation",))
    if choice == len(bad) + 1:
        xr["spec"]["rotation"] = {"evry": "30d"}
        return Broken(("spec.rotation.evry",))
    name = sorted(bad)[choice]
    xr["spec"]["rotation"] = {"every": "30d", name: rng.choice(bad[name])}
    return Broken((f"spec.rotation.{name}",))


@spec_mutation("metadata")
def _metadata(rng: random.Random, xr: dict[str, Any], _: dict[str, Any]) -> Broken:
    choice = rng.randrange(6)
    value: Any
    if choice == 0:
        value = rng.choice([[], ["a=b"], [{"a": "b"}], "a=b", 5, True])
    elif choice == 1:
        value = {"owner": rng.choice([5, 1.5, True, None, [], ["x"], {"a": "b"}])}
    elif choice == 2:
        value = rng.choice(
            [{"": "v"}, {"k" * 257: "v"}, {"k": "v" * 4097}, {f"k{i}": "v" for i in range(65)}]
        )
    elif choice == 3:
        value = {"owner": deep(rng, rng.randint(1, 30))}
    elif choice == 4:  # unicode and control characters are fine, but not a nested map
        value = {"ключ\x00\n": "中文", "bad": {"nested": junk_string(rng)}}
    else:
        value = {f"k{i}": rng.choice(["ok", 7]) for i in range(rng.randint(1, 64))}
        value["last"] = 7
    xr["spec"]["metadata"] = value
    return Broken(("spec.metadata",))


def _owner_id(name: str) -> Mutation:
    def mutate(rng: random.Random, xr: dict[str, Any], _: dict[str, Any]) -> Broken:
        xr["spec"][name] = rng.choice(["", 5, 1.5, True, [], ["team"], {}, "x" * 257])
        return Broken((f"spec.{name}",))

    return mutate


spec_mutation("teamID")(_owner_id("teamID"))
spec_mutation("userID")(_owner_id("userID"))


@spec_mutation("connectionRef")
def _connection_ref(rng: random.Random, xr: dict[str, Any], _: dict[str, Any]) -> Broken:
    spec = xr["spec"]
    instance = {"name": "litellm-example", "namespace": "litellm"}
    explicit = {
        "url": "http://litellm.litellm:4000",
        "masterKeySecretRef": {"name": "litellm-example-secrets", "namespace": "litellm"},
    }
    choice = rng.randrange(10)
    if choice == 0:
        del spec["connectionRef"]
    elif choice == 1:
        spec["connectionRef"] = wrong_type(rng, keep=(dict,))
    elif choice == 2:  # neither form
        spec["connectionRef"] = rng.choice([{}, {"url": "http://x:4000"}])
    elif choice == 3:  # both forms
        spec["connectionRef"] = {"instanceRef": instance, **explicit}
    elif choice == 4:
        spec["connectionRef"] = {"masterKeySecretRef": explicit["masterKeySecretRef"]}
    elif choice == 5:
        bad = rng.choice(["Litellm", "lite_llm", "-x", "x-", "x" * 64, "", 5, None, "a.b"])
        part = rng.choice(["name", "namespace"])
        spec["connectionRef"] = {"instanceRef": {**instance, part: bad}}
        return Broken((f"spec.connectionRef.instanceRef.{part}",))
    elif choice == 6:
        spec["connectionRef"] = {"instanceRef": rng.choice(["litellm", [instance], {}])}
        return Broken(("spec.connectionRef.instanceRef",))
    elif choice == 7:
        spec["connectionRef"] = {"instanceRef": instance, rng.choice(["urll", "extra"]): "x"}
    elif choice == 8:
        ref = {"name": "litellm-example-secrets", "namespace": "litellm", "key": "masterkey"}
        part = rng.choice(["name", "namespace", "key"])
        pattern = {
            "name": DNS_SUBDOMAIN_PATTERN,
            "namespace": DNS_LABEL_PATTERN,
            "key": r"^[-._a-zA-Z0-9]{1,253}$",
        }[part]
        ref[part] = not_matching(rng, pattern)
        spec["connectionRef"] = {"url": explicit["url"], "masterKeySecretRef": ref}
        return Broken((f"spec.connectionRef.masterKeySecretRef.{part}",))
    else:
        spec["connectionRef"] = {
            "url": explicit["url"],
            "masterKeySecretRef": rng.choice(["secret", [], {}, {"namespace": "litellm"}]),
        }
        return Broken(("spec.connectionRef.masterKeySecretRef",))
    return Broken(("spec.connectionRef",))


@other_mutation("connectionRef.url")
def _url(rng: random.Random, xr: dict[str, Any], _: dict[str, Any]) -> Broken:
    url = rng.choice(
        [
            "ftp://litellm:4000",
            "http://",
            "litellm:4000",
            "not a url",
            "http://litellm:4000?x=1",
            "http://litellm:4000/#frag",
            "http://user:pw@litellm:4000",
            "http://litellm:99999",
            "http://litellm:0",
            "http://lite llm:4000",
            "http://{{ a:b:c }}/",
            "https://litellm:4000/{x}",
            "",
            "javascript:alert(1)",
            "http://[::1",
        ]
    )
    # The master-key Secret in the default (own) namespace, which is always allowed.
    xr["spec"]["connectionRef"] = {"url": url, "masterKeySecretRef": {"name": "proxy"}}
    # A placeholder in the URL may be caught by the model's "{{" check first.
    return Broken(("spec.connectionRef.url",) if "{{" not in url else ("spec",))


@other_mutation("connectionRef.forbiddenNamespace")
def _forbidden(rng: random.Random, xr: dict[str, Any], _: dict[str, Any]) -> Broken:
    xr["spec"]["connectionRef"] = {
        "url": "http://litellm.litellm:4000",
        "masterKeySecretRef": {
            "name": "some-secret",
            "namespace": rng.choice(["kube-system", "crossplane-system", "litellm", "default"]),
        },
    }
    # Where the policy allows tenant proxies (team-b) the Secret's namespace is
    # what is wrong; elsewhere (team-a) the tenant proxy itself.
    if owner_of(xr).namespace == "team-b":
        return Broken(("spec.connectionRef.masterKeySecretRef.namespace", "team-b-own-proxy"))
    return Broken(("spec.connectionRef.url", "not allowed"))


@other_mutation("placeholder")
def _placeholder(rng: random.Random, xr: dict[str, Any], _: dict[str, Any]) -> Broken:
    spec = xr["spec"]
    where = rng.choice(["metadata value", "metadata key", "models", "tags", "teamID", "userID"])
    text = placeholder(rng)
    if where == "metadata value":
        spec["metadata"] = {"owner": text}
        return Broken(("spec.metadata.owner",))
    if where == "metadata key":
        spec["metadata"] = {text: "v"}
        return Broken(("spec.metadata",))
    if where in ("models", "tags"):
        spec[where] = ["fine", text]
        return Broken((f"spec.{where}[1]",))
    spec[where] = text
    return Broken((f"spec.{where}",))


@other_mutation("json object in a string")
def _json_object(rng: random.Random, xr: dict[str, Any], _: dict[str, Any]) -> Broken:
    # provider-http turns such strings into objects before LiteLLM sees them.
    text = rng.choice(['{"a": 1}', ' {"team": "a"}', "{}", '{"nested": {"x": [1, 2]}}'])
    where = rng.choice(["metadata", "teamID", "tags"])
    if where == "metadata":
        xr["spec"]["metadata"] = {"owner": text}
        return Broken(("spec.metadata.owner", "JSON object"))
    if where == "tags":
        xr["spec"]["tags"] = [text]
        return Broken(("spec.tags[0]", "JSON object"))
    xr["spec"]["teamID"] = text
    return Broken(("spec.teamID", "JSON object"))


@other_mutation("softBudget>maxBudget")
def _soft_over_max(rng: random.Random, xr: dict[str, Any], _: dict[str, Any]) -> Broken:
    top = rng.randint(0, 10**6)
    xr["spec"]["maxBudget"] = str(top)
    xr["spec"]["softBudget"] = rng.choice([str(top + 1), f"{top}.000001", str(top * 10 + 1)])
    return Broken(("spec.softBudget", "spec.maxBudget"))


@other_mutation("spec")
def _spec(rng: random.Random, xr: dict[str, Any], _: dict[str, Any]) -> Broken:
    if rng.random() < 0.3:
        del xr["spec"]
    else:
        xr["spec"] = rng.choice([[], ["keyAlias"], "spec", 5, 1.5, True, None, [{"a": "b"}]])
    return Broken(("spec",))


@other_mutation("metadata.name")
def _name(rng: random.Random, xr: dict[str, Any], _: dict[str, Any]) -> Broken:
    if rng.random() < 0.5:
        xr["metadata"].pop("name", None)
    else:
        xr["metadata"]["name"] = rng.choice(["", None])
    return Broken(("metadata.name",))


@other_mutation("legacy without claim")
def _no_claim(rng: random.Random, xr: dict[str, Any], _: dict[str, Any]) -> Broken:
    meta = xr["metadata"]
    meta.pop("namespace", None)
    labels = meta.get("labels") or {}
    # Keep at most one half of the claim's identity.
    keep = rng.choice([None, "crossplane.io/claim-name", "crossplane.io/claim-namespace"])
    meta["labels"] = {k: v for k, v in labels.items() if k == keep}
    claim_ref = xr["spec"].get("claimRef")
    if isinstance(claim_ref, dict):
        del xr["spec"]["claimRef"]
    return Broken(("metadata", "has no claim"))


def _input(path: str, values: list[Any], where: tuple[str, ...] = ()) -> Mutation:
    def mutate(rng: random.Random, _: dict[str, Any], fn_input: dict[str, Any]) -> Broken:
        target = fn_input
        for part in where:
            target = target.setdefault(part, {})
        target[path.rsplit(".", 1)[-1]] = copy.deepcopy(rng.choice(values))
        return Broken((f"input.{path}", "fix the function input"))

    return mutate


other_mutation("input.providerConfigRef.kind")(
    _input(
        "providerConfigRef.kind",
        ["Provider", "clusterproviderconfig", "ClusterProviderConfigs", "", 5, None, []],
        ("providerConfigRef",),
    )
)
other_mutation("input.providerConfigRef.name")(
    _input("providerConfigRef.name", ["Bad_Name", "", "-x", 5, []], ("providerConfigRef",))
)
other_mutation("input.requestTimeout")(
    _input("requestTimeout", ["0s", "30", "1h", "10000s", "30s ", "", "-1s", 30, 1.5, [], None])
)


@other_mutation("input.movedToPolicy")
def _moved(rng: random.Random, _: dict[str, Any], fn_input: dict[str, Any]) -> Broken:
    # What the input held before the TenancyPolicy; any value is refused.
    name = rng.choice(["instance", "allowedMasterKeyNamespaces"])
    fn_input[name] = rng.choice([["litellm"], {"urlTemplate": "http://{name}:4000"}, "x", None])
    return Broken((f"input.{name}", "moved to the TenancyPolicy"))


@other_mutation("input.unknown")
def _input_unknown(rng: random.Random, _: dict[str, Any], fn_input: dict[str, Any]) -> Broken:
    name = rng.choice(["providerConfig", "timeout", "allowedNamespaces", "instances", "x"])
    if rng.random() < 0.5:
        fn_input[name] = "x"
        return Broken((f"input.{name}", "is not a known field"))
    fn_input.setdefault("providerConfigRef", {})[name] = "x"
    return Broken((f"input.providerConfigRef.{name}", "is not a known field"))


@other_mutation("input.nested-not-object")
def _input_not_object(rng: random.Random, _: dict[str, Any], fn_input: dict[str, Any]) -> Broken:
    name = "providerConfigRef"
    fn_input[name] = rng.choice(["x", 5, ["a"], True])
    return Broken((f"input.{name}",))


# --- the generator ----------------------------------------------------------------------


@functools.cache
def make_case(index: int) -> Case:
    """The index-th generated case; the same on every run and machine."""
    rng = random.Random(f"{SEED}-{index}")  # noqa: S311 - reproducible, not secret
    base = rng.choice(["seed", "seed", "explicit", "legacy"])
    xr = {"seed": seed_virtualkey, "explicit": explicit_xr, "legacy": legacy_xr}[base]()
    fn_input: dict[str, Any] = copy.deepcopy(COMPOSITION_INPUT) if rng.random() < 0.8 else {}
    observed = observed_state(rng.choice(["none", "secret", "steady"]))
    roll = rng.random()
    if roll < 0.55:
        name = rng.choice(sorted(SPEC_MUTATIONS))
        broken = [SPEC_MUTATIONS[name](rng, xr, fn_input)]
        names = [name]
    elif roll < 0.7:  # several field-level errors are all reported together
        names = rng.sample(sorted(SPEC_MUTATIONS), rng.randint(2, 4))
        broken = [SPEC_MUTATIONS[n](rng, xr, fn_input) for n in names]
    else:
        name = rng.choice(sorted(OTHER_MUTATIONS))
        broken = [OTHER_MUTATIONS[name](rng, xr, fn_input)]
        names = [name]
    paths = tuple(p for b in broken for p in b.paths)
    return Case(
        name=f"#{index} {base}: {' + '.join(names)}",
        xr=xr,
        fn_input=fn_input or None,
        observed=observed,
        paths=paths,
    )


def check_case(server: FunctionServer, case: Case) -> str | None:
    """None if the case got one clean Fatal result, else what went wrong."""
    req = make_request(case.xr, case.observed, case.fn_input)
    try:
        rsp = server.run(req)
    except grpc.RpcError as e:
        return f"gRPC error: {e}"
    results = [(fnv1.Severity.Name(r.severity), r.message) for r in rsp.results]
    if len(results) != 1 or results[0][0] != "SEVERITY_FATAL":
        return f"expected one Fatal result, got {results!r:.600}"
    message = results[0][1]
    problems = []
    if len(rsp.desired.resources) != 0:
        problems.append(f"composed {sorted(rsp.desired.resources)}")
    missing = [p for p in case.paths if p not in message]
    if missing:
        problems.append(f"message does not name {missing}")
    if RAW_KEY.search(message):
        problems.append("message contains a raw key")
    if len(message) > MAX_MESSAGE:
        problems.append(f"message is {len(message)} characters long")
    if "internal error" in message:
        problems.append("internal error instead of a message naming the field")
    if problems:
        return f"{'; '.join(problems)}: {message!r:.600}"
    return None


@pytest.mark.parametrize("chunk", range(CASES // CHUNK))
def test_generated_malformed_virtualkeys_get_a_clean_fatal(
    function_server: FunctionServer, chunk: int
) -> None:
    failures = []
    for index in range(chunk * CHUNK, (chunk + 1) * CHUNK):
        case = make_case(index)
        problem = check_case(function_server, case)
        if problem is not None:
            spec = json.dumps(case.xr.get("spec"), default=str)[:300]
            failures.append(f"{case.name}\n    spec={spec}\n    {problem}")
    assert not failures, f"{len(failures)} of {CHUNK} cases failed:\n" + "\n".join(failures[:10])


def test_generator_is_deterministic_and_covers_every_mutation() -> None:
    names = " ".join(make_case(i).name for i in range(CASES))
    assert make_case(7).name == make_case(7).name
    assert make_case(7) is make_case(7)
    assert make_case.__wrapped__(7) == make_case(7)
    for name in [*SPEC_MUTATIONS, *OTHER_MUTATIONS]:
        assert f" {name}" in names, f"mutation {name} never generated"
    for base in ("seed", "explicit", "legacy"):
        assert f" {base}:" in names


# --- named cases: what a person reads ---------------------------------------------------


def _set(path: str, value: Any = None) -> Callable[[dict[str, Any]], None]:
    def edit(xr: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = xr
        for part in parents:
            target = target[part]
        target[last] = value

    return edit


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def edit(xr: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = xr
        for part in parents:
            target = target[part]
        del target[last]

    return edit


def _explicit_in(namespace: str) -> Callable[[dict[str, Any]], None]:
    return _set(
        "spec.connectionRef",
        {
            "url": "http://litellm.litellm:4000",
            "masterKeySecretRef": {"name": "proxy", "namespace": namespace, "key": "masterkey"},
        },
    )


def _in_team_b(xr: dict[str, Any]) -> None:
    """Move the XR to team-b, where the shipped policy allows tenant proxies."""
    xr["metadata"]["namespace"] = "team-b"


def _legacy_without_claim(xr: dict[str, Any]) -> None:
    xr["metadata"] = {"name": "example-service-x7k2p"}


def _both(*edits: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def edit(xr: dict[str, Any]) -> None:
        for one in edits:
            one(xr)

    return edit


ALIAS_FORM = "2-255 characters: letters, digits and _ - / . @"
DOLLARS_FORM = 'dollars as a quoted decimal with at most 6 decimals, e.g. "10" or "0.5"'
DURATION_FORM = "a whole number followed by s, m, h, d, w or mo"
URL_FORM = "an http:// or https:// URL with a host and no query"

NAMED: list[tuple[str, Callable[[dict[str, Any]], None], dict[str, Any] | None, list[str]]] = [
    ("maxBudget as float", _set("spec.maxBudget", 0.5), None, ["spec.maxBudget", DOLLARS_FORM]),
    (
        "maxBudget with 7 decimals",
        _set("spec.maxBudget", "0.1234567"),
        None,
        ["spec.maxBudget", "'0.1234567'", DOLLARS_FORM],
    ),
    ("maxBudget negative", _set("spec.maxBudget", "-5"), None, ["spec.maxBudget", DOLLARS_FORM]),
    (
        "softBudget above maxBudget",
        _both(_set("spec.maxBudget", "10"), _set("spec.softBudget", "10.5")),
        None,
        ["spec.softBudget", "10.5", "spec.maxBudget", "larger"],
    ),
    ("duration zero", _set("spec.duration", "0d"), None, ["spec.duration", DURATION_FORM, "30d"]),
    (
        "budgetDuration in years",
        _set("spec.budgetDuration", "1y"),
        None,
        ["spec.budgetDuration", DURATION_FORM, '"1mo"'],
    ),
    ("alias with ..", _set("spec.keyAlias", "team..a"), None, ["spec.keyAlias", "'..'"]),
    ("alias of one character", _set("spec.keyAlias", "a"), None, ["spec.keyAlias", ALIAS_FORM]),
    ("alias missing", _delete("spec.keyAlias"), None, ["spec.keyAlias", "is required", ALIAS_FORM]),
    (
        "placeholder in metadata value",
        _set("spec.metadata", {"owner": "{{ litellm-example-secrets:litellm:masterkey }}"}),
        None,
        ["spec.metadata.owner", "'{{'", "secret placeholder"],
    ),
    (
        "placeholder in a model name",
        _set("spec.models", ["gpt-4o", "{{ x:y:z }}"]),
        None,
        ["spec.models[1]", "'{{'"],
    ),
    (
        "placeholder in teamID",
        _set("spec.teamID", "{{ a:b:c }}"),
        None,
        ["spec.teamID", "'{{'"],
    ),
    (
        "JSON object in a metadata value",
        _set("spec.metadata", {"config": '{"retries": 3}'}),
        None,
        ["spec.metadata.config", "JSON object"],
    ),
    ("models repeated", _set("spec.models", ["a", "a"]), None, ["spec.models", "repeat"]),
    # LiteLLM answered 500 for 999999w: it adds the duration to now, past year 9999.
    (
        "duration of 999999 weeks",
        _set("spec.duration", "999999w"),
        None,
        ["spec.duration", "3 of w"],
    ),
    ("duration of 10000 days", _set("spec.duration", "10000d"), None, ["spec.duration", "4 of d"]),
    (
        "budgetDuration of 1000 months",
        _set("spec.budgetDuration", "1000mo"),
        None,
        ["spec.budgetDuration", "3 of mo"],
    ),
    # LiteLLM keeps these metadata keys itself: set, they were UPDATEd on every poll.
    (
        "metadata key LiteLLM keeps: logging",
        _set("spec.metadata", {"logging": "x", "owner": "a"}),
        None,
        ["spec.metadata", "'logging'", "LiteLLM keeps these keys"],
    ),
    (
        "metadata key LiteLLM keeps: tags",
        _set("spec.metadata", {"tags": "prod"}),
        None,
        ["spec.metadata", "'tags'", "use spec.tags"],
    ),
    ("models as a string", _set("spec.models", "gpt-4o"), None, ["spec.models", '["gpt-4o"]']),
    (
        "metadata as a list",
        _set("spec.metadata", ["owner=team-a"]),
        None,
        ["spec.metadata", "a map of string keys to string values"],
    ),
    ("tpmLimit negative", _set("spec.tpmLimit", -1), None, ["spec.tpmLimit", "whole number >= 0"]),
    (
        "maxParallelRequests zero",
        _set("spec.maxParallelRequests", 0),
        None,
        ["spec.maxParallelRequests", "whole number >= 1"],
    ),
    (
        "rpmLimit with a fraction",
        _set("spec.rpmLimit", 2.5),
        None,
        ["spec.rpmLimit", "whole number >= 0"],
    ),
    (
        "connectionRef missing",
        _delete("spec.connectionRef"),
        None,
        ["spec.connectionRef", "is required", "instanceRef {name, namespace}"],
    ),
    (
        "connectionRef with both forms",
        _set(
            "spec.connectionRef",
            {
                "instanceRef": {"name": "litellm-example", "namespace": "litellm"},
                "url": "http://litellm.litellm:4000",
                "masterKeySecretRef": {"name": "s", "namespace": "litellm"},
            },
        ),
        None,
        ["spec.connectionRef", "either instanceRef or url with masterKeySecretRef, not both"],
    ),
    (
        "connectionRef with neither form",
        _set("spec.connectionRef", {}),
        None,
        ["spec.connectionRef", "instanceRef {name, namespace}, or both url and masterKeySecretRef"],
    ),
    (
        "url without masterKeySecretRef",
        _set("spec.connectionRef", {"url": "http://litellm.litellm:4000"}),
        None,
        ["spec.connectionRef", "both url and masterKeySecretRef"],
    ),
    (
        "instanceRef name in capitals",
        _set("spec.connectionRef.instanceRef.name", "LiteLLM"),
        None,
        ["spec.connectionRef.instanceRef.name", "'LiteLLM'", "lower-case letters"],
    ),
    (
        "tenant proxy where the policy allows none",
        _explicit_in("team-a"),
        None,
        [
            "spec.connectionRef.url",
            "tenant-owned LiteLLM proxies are not allowed in namespace 'team-a'",
            "rule 'team-a' of TenancyPolicy 'litellm-example'",
            "Use instanceRef",
        ],
    ),
    (
        "tenant proxy with the platform's master key",
        _both(_in_team_b, _explicit_in("litellm")),
        None,
        [
            "spec.connectionRef.masterKeySecretRef.namespace",
            "'litellm' is not the VirtualKey's namespace",
            "rule 'team-b-own-proxy'",
        ],
    ),
    (
        "url with ftp scheme",
        _both(_in_team_b, _explicit_in("team-b"), _set("spec.connectionRef.url", "ftp://l:4000")),
        None,
        [
            "spec.connectionRef.url",
            "not a valid http:// or https:// URL",
            "'ftp://l:4000'",
            URL_FORM,
        ],
    ),
    (
        "url with credentials",
        _both(
            _in_team_b, _explicit_in("team-b"), _set("spec.connectionRef.url", "http://u:p@l:4000")
        ),
        None,
        ["spec.connectionRef.url", "credentials", URL_FORM],
    ),
    (
        "url with a query",
        _both(
            _in_team_b, _explicit_in("team-b"), _set("spec.connectionRef.url", "http://l:4000/?a=b")
        ),
        None,
        ["spec.connectionRef.url", "query", URL_FORM],
    ),
    (
        "spec not an object",
        _set("spec", ["keyAlias"]),
        None,
        ["spec: is missing or not an object", "spec.keyAlias and spec.connectionRef"],
    ),
    ("metadata missing name", _delete("metadata.name"), None, ["metadata.name", "no name"]),
    (
        "legacy XR without claim",
        _legacy_without_claim,
        None,
        ["metadata", "'example-service-x7k2p' is cluster-scoped", "create a VirtualKey claim"],
    ),
    (
        "input with a bad providerConfigRef kind",
        lambda _: None,
        {"providerConfigRef": {"kind": "Provider"}},
        ["input.providerConfigRef.kind", "'Provider'", "fix the function input in the Composition"],
    ),
    (
        "input with a bad requestTimeout",
        lambda _: None,
        {"requestTimeout": "0s"},
        ["input.requestTimeout", "'0s'", "fix the function input"],
    ),
    (
        "input with an unknown field",
        lambda _: None,
        {"timeout": "30s"},
        ["input.timeout: is not a known field", "fix the function input"],
    ),
    (
        "input with the old instance conventions",
        lambda _: None,
        {"instance": {"urlTemplate": "http://{name}:4000"}},
        ["input.instance: moved to the TenancyPolicy", "remove it from the Composition"],
    ),
    (
        "input with the old allowedMasterKeyNamespaces",
        lambda _: None,
        {"allowedMasterKeyNamespaces": ["litellm"]},
        ["input.allowedMasterKeyNamespaces: moved to the TenancyPolicy"],
    ),
]


@pytest.mark.parametrize(
    ("edit", "fn_input", "fragments"),
    [pytest.param(e, i, f, id=n) for n, e, i, f in NAMED],
)
def test_named_bad_input(
    function_server: FunctionServer,
    edit: Callable[[dict[str, Any]], None],
    fn_input: dict[str, Any] | None,
    fragments: list[str],
) -> None:
    xr = seed_virtualkey()
    edit(xr)
    message = fatal_message(call(function_server, make_request(xr, {}, fn_input)))
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_fatal_message_keeps_the_observed_key_out(function_server: FunctionServer) -> None:
    xr = seed_virtualkey()
    xr["spec"]["maxBudget"] = "ten"
    message = fatal_message(call(function_server, make_request(xr, observed_state("steady"))))
    assert "spec.maxBudget" in message
    assert OBSERVED_KEY not in message
    assert RAW_KEY.search(message) is None


# --- bugs found by this suite, fixed; kept as regression tests ------------------------


def test_literal_choices_keep_their_case(function_server: FunctionServer) -> None:
    rsp = call(
        function_server,
        make_request(seed_virtualkey(), {}, {"providerConfigRef": {"kind": "Provider"}}),
    )
    assert "'ClusterProviderConfig'" in fatal_message(rsp)


def test_huge_metadata_key_is_not_echoed_whole(function_server: FunctionServer) -> None:
    xr = seed_virtualkey()
    xr["spec"]["metadata"] = {"k" * 100_000: "v"}
    message = fatal_message(call(function_server, make_request(xr)))
    assert "spec.metadata" in message
    assert len(message) < 2_000


def test_key_shaped_value_is_not_echoed(function_server: FunctionServer) -> None:
    xr = seed_virtualkey()
    xr["spec"]["budgetDuration"] = "sk-" + "PastedKey0123456789abcdefghijklmnopqrstuvw"
    message = fatal_message(call(function_server, make_request(xr)))
    assert "spec.budgetDuration" in message
    assert RAW_KEY.search(message) is None


@pytest.mark.parametrize("spec", [["keyAlias"], {"claimRef": "team-a/example-service"}])
def test_legacy_xr_with_malformed_spec_names_the_field(
    function_server: FunctionServer, spec: Any
) -> None:
    xr = seed_virtualkey()
    xr["metadata"] = {"name": "example-service-x7k2p"}
    xr["spec"] = spec
    message = fatal_message(call(function_server, make_request(xr)))
    assert "internal error" not in message
    assert "spec" in message or "metadata" in message


def test_overlong_url_is_refused(function_server: FunctionServer) -> None:
    xr = explicit_xr()
    xr["spec"]["connectionRef"] = {
        "url": "http://" + "x" * 3000 + ":4000",
        "masterKeySecretRef": {"name": "proxy"},
    }
    assert "spec.connectionRef.url" in fatal_message(call(function_server, make_request(xr)))


def test_metadata_not_an_object_is_fatal(function_server: FunctionServer) -> None:
    xr = seed_virtualkey()
    xr["metadata"] = "example-service"
    rsp = function_server.run(make_request(xr))
    assert "metadata" in fatal_message(rsp)


# --- valid edge cases: not Fatal --------------------------------------------------------


def _ok(rsp: fnv1.RunFunctionResponse) -> None:
    fatal = [r.message for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]
    assert not fatal, fatal
    assert set(rsp.desired.resources) >= {"key"}
    assert len(rsp.desired.resources) == 2


VALID: list[tuple[str, Callable[[dict[str, Any]], None], dict[str, Any] | None]] = [
    ("maxBudget zero as string", _set("spec.maxBudget", "0"), None),
    ("maxBudget with 6 decimals", _set("spec.maxBudget", "10.123456"), None),
    ("maxBudget with 12 digits", _set("spec.maxBudget", "999999999999.999999"), None),
    ("models absent", _delete("spec.models"), None),
    ("models empty", _set("spec.models", []), None),
    ("budgetDuration in months", _set("spec.budgetDuration", "999mo"), None),
    ("duration of 9999 days", _set("spec.duration", "9999d"), None),
    ("duration of 99999999 seconds", _set("spec.duration", "99999999s"), None),
    ("duration of 1 second", _set("spec.duration", "1s"), None),
    ("softBudget equal to maxBudget", _set("spec.softBudget", "10.000000"), None),
    ("tpmLimit zero", _set("spec.tpmLimit", 0), None),
    ("maxParallelRequests one", _set("spec.maxParallelRequests", 1), None),
    ("blocked false", _set("spec.blocked", value=False), None),
    ("alias of 255 characters", _set("spec.keyAlias", "a" + "b/.@_-" * 42 + "cd"), None),
    ("alias with a single dot", _set("spec.keyAlias", "team.a@example.com"), None),
    ("unicode metadata", _set("spec.metadata", {"owner": "ключ 中文 🙂", "e": ""}), None),
    ("single braces in metadata", _set("spec.metadata", {"tmpl": "{x} }}"}), None),
    ("64 tags", _set("spec.tags", [f"t{i}" for i in range(64)]), None),
    ("tenant proxy, secret in own namespace", _both(_in_team_b, _explicit_in("team-b")), None),
    (
        "tenant proxy, secret without namespace (defaults to own)",
        _both(
            _in_team_b,
            _set(
                "spec.connectionRef",
                {"url": "https://litellm.example.com/", "masterKeySecretRef": {"name": "proxy"}},
            ),
        ),
        None,
    ),
    ("no input at all", lambda _: None, None),
    ("empty input", lambda _: None, {}),
    ("the composition's input", lambda _: None, COMPOSITION_INPUT),
    (
        "ProviderConfig kind and a long timeout",
        lambda _: None,
        {"providerConfigRef": {"kind": "ProviderConfig", "name": "p"}, "requestTimeout": "9999m"},
    ),
    (
        "crossplane machinery in spec is ignored",
        _set("spec.crossplane", {"compositionRef": {"name": "virtualkeys.auth.litellm.ai"}}),
        None,
    ),
]


@pytest.mark.parametrize(("edit", "fn_input"), [pytest.param(e, i, id=n) for n, e, i in VALID])
def test_valid_edge_case_is_not_fatal(
    function_server: FunctionServer,
    edit: Callable[[dict[str, Any]], None],
    fn_input: dict[str, Any] | None,
) -> None:
    xr = seed_virtualkey()
    edit(xr)
    _ok(call(function_server, make_request(xr, observed_state("steady"), fn_input)))


def test_legacy_claim_xr_is_not_fatal(function_server: FunctionServer) -> None:
    rsp = call(function_server, make_request(legacy_xr(), observed_state("steady")))
    _ok(rsp)
    secret = rsp.desired.resources["key"].resource
    assert secret["metadata"]["namespace"] == "team-a"
    assert secret["metadata"]["name"] == "example-service-litellm-key"


@pytest.mark.parametrize(("name", "value"), [("maxBudget", 10), ("softBudget", 0)])
def test_dollars_as_int_is_not_fatal(
    function_server: FunctionServer, name: str, value: int
) -> None:
    xr = seed_virtualkey()
    xr["spec"][name] = value
    _ok(call(function_server, make_request(xr)))
