#!/usr/bin/env bash
# Sets up the machine, starts a 2-node lab, applies the Service guide's NodePort example
# and a LoadBalancer example, and shows them answering from the host: each request is
# answered by a pod with its own hostname. Needs root. `minikube-py delete` cleans up.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) -ne 0 ]]; then
  echo "demo: must run as root (network namespaces, Docker, nftables)" >&2
  exit 1
fi
scripts/setup.sh
M=.venv/bin/minikube-py
export KUBECONFIG="${KUBECONFIG:-$HOME/.kube/config}"

$M start --nodes 2
$M apply -f examples/guide/nodeport.yaml
$M apply -f examples/loadbalancer.yaml
kubectl rollout status deployment/test --timeout=120s
kubectl rollout status deployment/hello-lb --timeout=120s
kubectl get nodes -o wide
kubectl get pods -o wide
kubectl get svc

echo
echo "== NodePort 30000 through every node (the guide's test-service):"
for ip in $(kubectl get nodes -o jsonpath='{.items[*].status.addresses[?(@.type=="InternalIP")].address}'); do
  for _ in 1 2 3; do
    printf '  %s:30000 -> ' "$ip"; curl -s --max-time 2 "http://$ip:30000/" || echo "(no answer)"
  done
done
echo "== LoadBalancer address of hello-lb:"
lb=$(kubectl get svc hello-lb -o jsonpath='{.status.loadBalancer.ingress[0].ip}')
for _ in 1 2 3; do
  printf '  %s:80 -> ' "$lb"; curl -s --max-time 2 "http://$lb/" || echo "(no answer)"
done
echo
echo "The lab keeps running: try kubectl get all, minikube-py status; minikube-py delete removes it."
