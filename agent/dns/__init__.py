"""Cluster DNS for the node agent: `records` builds the table from Services,
EndpointSlices and Pods (pure), `server` serves it over UDP/TCP and forwards the rest,
`pod_config` renders each pod's resolv.conf and /etc/hosts.
"""
