package registry

import (
	"context"

	"github.com/afterlife-oss/afterlife/registry/device"
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
