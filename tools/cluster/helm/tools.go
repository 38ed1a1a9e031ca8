//go:build tools

// Package tools pins Helm, which renders Crossplane's own chart for the node
// plane (node.sh). build.sh builds it from the Go module proxy; nothing here
// ships in the product.
package tools

import (
	_ "helm.sh/helm/v4/cmd/helm"
)
