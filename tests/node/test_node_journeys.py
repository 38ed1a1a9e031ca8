"""The host plane's journeys for Users and Teams, rotation and reinstalls, on the node plane.

The same test functions as tests/cluster/, collected here again: this
folder's conftest gives them the node plane as `plane`, `platform` and
`proxy`, so everything they drive runs in pods, installed as shipped.
"""

from __future__ import annotations

import pytest

from tests.cluster.test_accounts_cluster import (  # noqa: F401 - tests and fixtures, by name.
    examples,
    test_users_and_teams_as_the_readme_says,
)
from tests.cluster.test_rotation_cluster import (  # noqa: F401 - tests and fixtures, by name.
    rotating_often,
    test_a_bumped_trigger_rotates_with_a_grace_period,
    test_a_reinstalled_virtualkey_replaces_the_key_it_made_before,
)

pytestmark = pytest.mark.node
