package escrow

import (
	"context"
	"time"

	"github.com/afterlife-oss/afterlife/escrow/policy"
)

// DeadManDeadline is when deposit d's dead-man rule fires unless its vendor
// checks in again, with the vendor's last check-in (zero: never). ok is
// false for a deposit whose policy has no dead-man rule.
func (s *Service) DeadManDeadline(ctx context.Context, d Deposit) (lastCheckin, deadline time.Time, ok bool, err error) {
	pol, err := policy.Parse(d.Policy)
	if err != nil || pol.DeadMan == nil {
		return time.Time{}, time.Time{}, false, nil
	}
	last, err := s.LastCheckin(ctx, d.Org)
	if err != nil {
		return time.Time{}, time.Time{}, false, err
	}
	return last, pol.DeadMan.Deadline(d.SealedAt, last), true, nil
}
