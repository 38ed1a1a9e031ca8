"""The status poller: LiteLLM spend and state in each VirtualKey's status.

`function-litellm-keys poll` runs beside the composition function. Each
cycle it lists VirtualKeys, groups them by LiteLLM instance, fetches the
keys' state in bulk and writes `status.currentSpend`, `isActive`,
`expiryDate`, `budgetResetAt` and a `SpendSynced` condition.

Modules, each with one job:

- `settings`: every setting, from a flag or an environment variable.
- `litellm`: the HTTP client for one proxy; status codes -> exceptions.
- `records`: LiteLLM's key objects -> `KeyRecord`.
- `fetch`: bulk fetch strategies (`/key/list`, `/v2/key/info`, per key).
- `state`: pure: a record and the time -> status fields, condition, events.
- `kube`: the Kubernetes API: list XRs, master keys, status patches, events.
- `leader`: leader election through a coordination.k8s.io Lease.
- `backoff`: exponential backoff with jitter, per instance.
- `cycle`: one cycle from listing to writing.
- `loop`: interval, jitter, SIGTERM, leadership.
- `metrics`: Prometheus metrics, /healthz and /readyz.
- `redact`: keeps raw keys out of log lines and messages.
- `cli`: the `poll` subcommand.
"""
