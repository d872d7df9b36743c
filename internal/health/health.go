// Package health says whether a replica is ready, dependency by
// dependency: each check runs on its own, and the replica stays ready
// while everything it needs for what it must always serve (update checks,
// TUF metadata) answers, even when a dependency of other routes is away.
// It knows nothing of HTTP or of the parts; serve wires the checks.
package health

import (
	"context"
	"sync"
	"time"
)

// Check is one dependency of the replica.
type Check struct {
	Name string
	// Needed: the replica cannot serve update checks and TUF metadata
	// without it, so it is not ready while this fails.
	Needed bool
	// Without says what fails while this dependency is away.
	Without string
	Ping    func(ctx context.Context) error
}

// Status of a replica.
const (
	Ready       = "ready"       // every dependency answers
	Degraded    = "degraded"    // ready, but some routes fail until a dependency is back
	Unavailable = "unavailable" // a dependency it needs is away
)

// Report is a replica's readiness as /readyz shows it.
type Report struct {
	Status string            `json:"status"`
	Checks map[string]Result `json:"checks"`
}

// Ready reports whether the replica should receive traffic.
func (r Report) Ready() bool { return r.Status != Unavailable }

// Result is one check's outcome.
type Result struct {
	OK      bool   `json:"ok"`
	Needed  bool   `json:"needed"`
	Millis  int64  `json:"ms"`
	Error   string `json:"error,omitempty"`
	Without string `json:"without,omitempty"` // what fails meanwhile, when not OK
}

// Run runs every check at once, each bounded by timeout.
func Run(ctx context.Context, timeout time.Duration, checks []Check) Report {
	results := make([]Result, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			start := time.Now()
			err := c.Ping(cctx)
			r := Result{OK: err == nil, Needed: c.Needed, Millis: time.Since(start).Milliseconds()}
			if err != nil {
				r.Error, r.Without = err.Error(), c.Without
			}
			results[i] = r
		})
	}
	wg.Wait()
	rep := Report{Status: Ready, Checks: make(map[string]Result, len(checks))}
	for i, c := range checks {
		r := results[i]
		rep.Checks[c.Name] = r
		switch {
		case !r.OK && r.Needed:
			rep.Status = Unavailable
		case !r.OK && rep.Status == Ready:
			rep.Status = Degraded
		}
	}
	return rep
}
