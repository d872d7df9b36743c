package live

import (
	"context"
	"fmt"

	"github.com/afterlife-oss/afterlife/web"
)

// handovers are the product's published handover statements with their
// log entries. A page shows what it can: a lookup that fails leaves the
// line out (or without its entry) rather than failing the page.
func (a Catalog) handovers(ctx context.Context, product string) []web.Handover {
	hs, err := a.p.Catalog.Handovers(ctx, product)
	if err != nil || len(hs) == 0 {
		return nil
	}
	var entries map[string]int64
	if a.p.Log != nil {
		deposits := make([]string, len(hs))
		for i, h := range hs {
			deposits[i] = h.Deposit
		}
		entries, _ = a.p.Log.HandoverEntries(ctx, deposits)
	}
	out := make([]web.Handover, 0, len(hs))
	for _, h := range hs {
		w := web.Handover{VendorKey: h.VendorKey, RootSHA256: h.RootSHA256, At: h.ReleasedAt, LogEntry: -1,
			URL: "/v1/products/" + product + "/handover"}
		if idx, ok := entries[h.Deposit]; ok {
			w.LogEntry, w.LogURL = idx, fmt.Sprintf("/v1/log/entries/%d", idx)
		}
		out = append(out, w)
	}
	return out
}
