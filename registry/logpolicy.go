package registry

import (
	"context"
	"encoding/json"
	"time"

	"github.com/afterlife-oss/afterlife/registry/device"
	"github.com/afterlife-oss/afterlife/registry/translog"
)

// PublishLogPolicy puts the transparency log's policy (its key, the
// witnesses and the quorum) into the signed TUF root, under the signing
// lease, so devices learn it through the root chain they already follow;
// a change of witnesses is a new root version. It needs root.key in the
// key directory. It reports whether it held the signing lease (another
// replica may be signing now: try again later) and whether a new root was
// published.
func (s *Service) PublishLogPolicy(ctx context.Context, policy any) (held, changed bool, err error) {
	held, err = s.withTUFLease(ctx, false, func() error {
		var err error
		changed, err = s.o.TUF.SetRootField(ctx, device.LogPolicyField, policy)
		return err
	})
	return held, changed, err
}

// KeepLogPolicy keeps the log's policy (its key, the witnesses and the
// quorum) in the signed TUF root: whenever it changes (a witness cosigns
// for the first time), a new root version carries it to devices. It
// returns when ctx ends.
func (s *Service) KeepLogPolicy(ctx context.Context, l *translog.Log, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	var published, failed string
	for {
		pol, err := l.Policy(ctx)
		operators := map[string]bool{}
		for _, w := range pol.Witnesses {
			operators[w.Operator] = true
		}
		// A policy no checkpoint can meet yet would make devices refuse
		// everything: it waits until enough witnesses have cosigned.
		if err == nil && len(operators) >= pol.Quorum {
			b, _ := json.Marshal(pol)
			if string(b) != published {
				held, changed, err := s.PublishLogPolicy(ctx, pol)
				switch {
				case !held && err == nil:
					// Another replica signs now; the next tick tries again.
				case err != nil && string(b) != failed && ctx.Err() == nil:
					s.log.Warn("the transparency log's policy is not in the TUF root yet; devices do not check the log until it is", "err", err)
					failed = string(b)
				case err == nil:
					published = string(b)
					if changed {
						s.log.Info("published the transparency log's policy in the TUF root", "witnesses", len(pol.Witnesses), "quorum", pol.Quorum)
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
