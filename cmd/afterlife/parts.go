package main

import (
	"context"

	"github.com/afterlife-oss/afterlife/internal/httpapi"
)

// wireParts builds escrow, the build farm, the registry and the web pages
// on the shared system, and connects them through small adapters.
func (s *system) wireParts(ctx context.Context, root, v1 *httpapi.Router) error {
	return nil
}
