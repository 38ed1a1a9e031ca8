"""Users, Teams and VirtualKeys as Crossplane sends them, and what the function answered.

Shared by tests/accounts/: `user()`, `team()` and `key()` build the objects,
`on_proxy()` and `answered()` their Requests as provider-http leaves them, and
`run()` one RunFunction over the function's real gRPC server for a `Case`.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from crossplane.function import resource
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from tests.conftest import load_example
from tests.grpc_harness import FunctionServer, example_policies, make_request, required_resources

Obj = dict[str, Any]
MASTER = "{{ litellm-example-secrets:litellm:masterkey }}"


def user(name: str = "alice", status: Obj | None = None, **spec: Any) -> Obj:
    """A User; `status` is what a tenant may have written there, which proves nothing."""
    xr = copy.deepcopy(load_example("accounts/user.yaml"))
    xr["metadata"]["name"] = name
    xr["metadata"]["uid"] = f"uid-user-{name}"
    xr["spec"].update(spec)
    xr["spec"] = {k: v for k, v in xr["spec"].items() if v is not None}
    if status is not None:
        xr["status"] = status
    return xr


def team(status: Obj | None = None, **spec: Any) -> Obj:
    xr = copy.deepcopy(load_example("accounts/team.yaml"))
    xr["metadata"]["uid"] = "uid-team-research"
    xr["spec"].update(spec)
    if status is not None:
        xr["status"] = status
    return xr


def on_proxy(xr: Obj, code: int = 200, path: str | None = None, body: Any = None) -> Obj:
    """The Request of a User or Team as provider-http left it once it made the user or team.

    What the function reads to know that the user or team exists on the proxy
    as that object's: LiteLLM's answer, never the object's status.
    """
    kind = xr["kind"].lower()
    name = xr["metadata"]["name"]
    local = xr["spec"].get(f"{kind}ID") or name
    litellm_id = f"{xr['metadata']['namespace']}.{local}"
    return {
        "apiVersion": "http.m.crossplane.io/v1alpha2",
        "kind": "Request",
        "metadata": {
            "name": f"{name}-{kind}",
            "namespace": xr["metadata"]["namespace"],
            "ownerReferences": [
                {"controller": True, "uid": xr["metadata"]["uid"], "kind": xr["kind"]}
            ],
        },
        "spec": {"forProvider": {"payload": {"body": json.dumps({f"{kind}Id": litellm_id})}}},
        "status": {
            "response": {"statusCode": code, "body": json.dumps(body or {})},
            "requestDetails": {"url": f"http://litellm:4000{path or f'/{kind}/new'}"},
        },
    }


def answered(code: int, path: str, body: Any = None) -> Obj:
    """A Request after LiteLLM answered `code` on `path`."""
    return {
        "apiVersion": "http.m.crossplane.io/v1alpha2",
        "kind": "Request",
        "metadata": {"name": "x", "namespace": "team-a"},
        "status": {
            "response": {"statusCode": code, "body": json.dumps(body or {})},
            "requestDetails": {"url": f"http://litellm:4000{path}", "method": "GET"},
        },
    }


def with_roles(*roles: str) -> list[Obj]:
    policies = copy.deepcopy(example_policies())
    policies[0]["spec"]["rules"][0]["users"] = {"roles": list(roles)}
    return policies


def bound(team_id: str) -> list[Obj]:
    policies = copy.deepcopy(example_policies())
    policies[0]["spec"]["rules"][0]["teams"] = {"bind": team_id}
    return policies


@dataclass
class Case:
    xr: Obj
    observed: dict[str, Obj] = field(default_factory=dict)
    policies: list[Obj] | None = None
    users: list[Obj] = field(default_factory=list)
    teams: list[Obj] = field(default_factory=list)
    requests: list[Obj] = field(default_factory=list)  # the Users' and Teams' Requests


def run(server: FunctionServer, case: Case) -> fnv1.RunFunctionResponse:
    required = required_resources(
        case.xr, case.policies, users=case.users, teams=case.teams, requests=case.requests
    )
    return server.run(make_request(case.xr, case.observed, required=required))


def desired(rsp: fnv1.RunFunctionResponse, name: str) -> Obj:
    found: Obj = resource.struct_to_dict(rsp.desired.resources[name].resource)
    return found


def payload(rsp: fnv1.RunFunctionResponse, name: str) -> Obj:
    body: Obj = json.loads(desired(rsp, name)["spec"]["forProvider"]["payload"]["body"])
    return body


def fatal(rsp: fnv1.RunFunctionResponse) -> str:
    messages: list[str] = [r.message for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]
    assert messages, f"expected a Fatal result, got {rsp.results}"
    assert not rsp.desired.resources, "a Fatal result must compose nothing"
    return messages[0]


def status(rsp: fnv1.RunFunctionResponse) -> Obj:
    found: Obj = resource.struct_to_dict(rsp.desired.composite.resource).get("status") or {}
    return found


def condition(rsp: fnv1.RunFunctionResponse, kind: str) -> fnv1.Condition:
    found: fnv1.Condition = next(c for c in rsp.conditions if c.type == kind)
    return found


ALICE_READY = user()
ALICE_ON_PROXY = on_proxy(ALICE_READY)
USER_IN_PLACE = answered(200, "/user/info?user_id=team-a.alice", {"user_id": "team-a.alice"})
TEAM_IN_PLACE = answered(200, "/team/info?team_id=team-a.research", {"team_id": "x"})


def key(**spec: Any) -> Obj:
    xr = copy.deepcopy(load_example("virtualkey/virtualkey.yaml"))
    xr["spec"].update(spec)
    return xr
