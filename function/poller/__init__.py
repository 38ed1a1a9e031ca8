"""The status poller: LiteLLM spend and state in each VirtualKey's status.

`function-litellm-keys poll` runs beside the composition function. Each
cycle it lists VirtualKeys, Users and Teams, groups them by LiteLLM
instance, fetches their state in bulk and writes `status.currentSpend`,
`isActive`, `expiryDate`, `budgetResetAt` and a `SpendSynced` condition
(a User's or Team's spend, budget reset and members). It decides nothing
from a status, which tenants can write: a key is a VirtualKey's by alias
and the master key's provenance stamp (`fetch`). Every so often it deletes
the mask Secrets whose Request is gone (`masks`).

Modules, each with one job:

- `settings`: every setting, from a flag or an environment variable.
- `litellm`: the HTTP client for one proxy; status codes -> exceptions.
- `records`: LiteLLM's key objects -> `KeyRecord`.
- `fetch`: which key is a VirtualKey's; bulk (`/key/list`) or per alias.
- `accounts`: Users' and Teams' users and teams, read and written.
- `state`: pure: a record and the time -> status fields, condition, events.
- `deadline`: how long a piece of a cycle may take, and the stop signal.
- `jsondepth`: JSON nested deeper than Python decodes, without its deepest parts.
- `masks`: deleting the mask Secrets whose Request is gone.
- `kube`: the Kubernetes API: list XRs, master keys, status patches, events.
- `leader`: leader election through a coordination.k8s.io Lease.
- `backoff`: exponential backoff with jitter, per instance.
- `cycle`: one cycle from listing to writing, within its deadline,
  platform instances first, tenant proxies capped per namespace.
- `loop`: interval, jitter, SIGTERM, leadership.
- `metrics`: Prometheus metrics, /healthz and /readyz.
- `redact`: keeps raw keys out of log lines and messages.
- `cli`: the `poll` subcommand.
"""
