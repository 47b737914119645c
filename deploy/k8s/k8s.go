// Package k8s holds the Kubernetes manifests of the mesh (the *.yaml files
// beside this one; docs/deploy.md walks through them). It has no code: its
// test checks that every manifest parses against the fields of the
// Kubernetes API it uses and that the pieces fit together, since no
// cluster or kubectl is at hand where the tests run.
package k8s
