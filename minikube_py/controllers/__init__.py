"""The controller-manager: the loops that turn objects into intent.

Every controller is level-triggered: informer handlers only enqueue keys into a
`WorkQueue`, and a reconcile reads the informer caches, asks a pure decision function
(module-level, unit-tested) what the world should look like, and makes the API calls
that close the difference. All controllers share one `Informers` set (one list+watch
per kind) and run in one process, gated by leader election on a Lease.
"""
