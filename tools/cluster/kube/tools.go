//go:build tools

// Package tools pins the Kubernetes control-plane binaries that the
// end-to-end suite runs: kube-apiserver, kube-controller-manager (for the
// garbage collector) and kubectl. build.sh builds them from the Go module
// proxy; nothing here ships in the product.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
