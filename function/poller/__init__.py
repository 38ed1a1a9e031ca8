"""The status poller: LiteLLM spend and state in each VirtualKey's status.

`function-litellm-keys poll` runs beside the composition function. Each
cycle it lists VirtualKeys, Users and Teams, groups them by LiteLLM
instance, fetches their state in bulk and writes `status.currentSpend`,
`isActive`, `expiryDate`, `budgetResetAt` and a `SpendSynced` condition
(a User's or Team's spend, budget reset and members). It decides nothing
from a status, which tenants can write: a key is a VirtualKey's by alias
and the master key's provenance stamp (`fetch`). Every so often it deletes
the mask Secrets whose Request is gone (`masks`).

Modules, each with one job, from the cycle down:

- `cli`: the `poll` subcommand; `loop`: interval, jitter, SIGTERM, leadership.
- `cycle`: one cycle from listing to writing, within its deadline (the
  orchestration, read top to bottom).
- `tenancy`: the TenancyPolicies and Namespace labels, read once a cycle;
  tenant proxies capped per namespace.
- `keys`: VirtualKeys: which to read where, each key's observation, its write.
- `accounts`: Users and Teams: which to read where, their users and teams
  read in bulk, their writes.
- `instances`: what each instance is read for, in which order, and what is
  kept of it between cycles (backoff, client).
- `writer`: retried status patches and events; one object's error stays with it.
- `masks`: deleting the mask Secrets whose Request is gone.
- `fetch`: which key is a VirtualKey's; bulk (`/key/list`) or per alias.
- `litellm`: the HTTP client for one proxy; status codes -> exceptions.
- `records`: LiteLLM's key objects -> `KeyRecord`; money and times in answers.
- `state`: pure: a record and the time -> status fields, condition, events.
- `deadline`: how long a piece of a cycle may take, and the stop signal.
- `kube`: what the poller reads and writes in Kubernetes (`Cluster`);
  `kubeapi`: one request, paged lists, the errors.
- `jsondepth`: JSON nested deeper than Python decodes, without its deepest parts.
- `leader`: leader election through a coordination.k8s.io Lease.
- `backoff`: exponential backoff with jitter, per instance.
- `metrics`: Prometheus metrics, /healthz and /readyz.
- `settings`: every setting, one table: flag, variable, type, default, help.
- `redact`: keeps raw keys out of log lines and messages.
- `rbac`: the master-key Roles, made from the TenancyPolicies.
"""
