// Package kubernetes holds Rampart's Kubernetes manifests (the *.yaml files here; apply them with
// `kubectl apply -k deploy/kubernetes` as docs/deploy.md describes). It has no code: its test
// decodes every manifest strictly into the Kubernetes API types, so that a typo fails CI, and
// checks that the NetworkPolicies, Services and the ConfigMap's config fit the workloads.
package kubernetes
