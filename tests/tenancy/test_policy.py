"""A TenancyPolicy is validated when it is loaded (`function.tenancy.policy`).

Each mistake a platform team can make is refused, naming the field and what to
change; a broken policy grants nothing (tests/tenancy/test_decide.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from function.tenancy.policy import parse_policy_spec
from function.validation import InvalidInputError
from tests.tenancy.policies import instance, rule


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"rules": [rule("a", [])]}, "name namespaces in names, or select them with selector"),
        ({"rules": [rule("a", ["x"]), rule("a", ["y"])]}, "two rules have the same name"),
        ({"instances": [instance(), instance()]}, "declared twice"),
        (
            {"rules": [rule("a", ["x"], instances=[instance()])]},
            "is not declared in this policy's spec.instances",
        ),
        (
            {"rules": [rule("a", ["x"], users={"allow": ["default_user_id"]})]},
            "master-key user",
        ),
        ({"instances": [instance(url="ftp://x")]}, "spec.instances[].url"),
        ({"instances": [instance(url="http://u:p@x:4000")]}, "credentials"),
        ({"rules": [rule("a", ["x"], teams={"bind": "{{ s:ns:k }}"})]}, "spec.rules[0].teams.bind"),
        (
            {"rules": [rule("a", selector={"matchExpressions": [{"key": "k", "operator": "In"}]})]},
            "operator In needs values",
        ),
        ({"rules": [rule("Bad_Name", ["x"])]}, "spec.rules[0].name"),
        ({"surprise": True}, "spec.surprise: is not a known field"),
    ],
)
def test_policy_is_validated_on_load(spec: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidInputError) as refused:
        parse_policy_spec(spec)
    assert fragment in str(refused.value)
