//go:build tools

// Package tools pins the Kubernetes binaries that the end-to-end suites run:
// kube-apiserver, kube-controller-manager (for the garbage collector) and
// kubectl for both planes; kube-scheduler, kubelet and kube-proxy for the
// node plane (node.sh). build.sh builds them from the Go module
// proxy; nothing here ships in the product.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
