//go:build tools

// Package tools pins CoreDNS, the node plane's cluster DNS (node.sh).
// build.sh builds it from the Go module proxy; nothing here ships in the product.
package tools

import (
	_ "github.com/coredns/coredns"
)
