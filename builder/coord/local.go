package coord

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Local is the builder.Coordinator as seen by one builder, identified by a
// token id: the one server-side implementation of the protocol. The local
// builders `afterlife serve` runs call it in process, the HTTP API
// (builder/farmhttp) calls it for each request with the caller's token,
// and tests of the agent use it without HTTP.
type Local struct {
	s       *Service
	tokenID string

	mu        sync.Mutex
	builderID string
}

var _ builder.Coordinator = (*Local)(nil)

// Local returns the coordinator as seen by the builder bound to tokenID.
func (s *Service) Local(tokenID string) *Local { return &Local{s: s, tokenID: tokenID} }

func (l *Local) id(ctx context.Context) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.builderID != "" {
		return l.builderID, nil
	}
	b, err := l.s.BuilderByToken(ctx, l.tokenID)
	if err != nil {
		return "", err
	}
	l.builderID = b.ID
	return b.ID, nil
}

// Register implements builder.Coordinator.
func (l *Local) Register(ctx context.Context, reg builder.Registration) (builder.Builder, error) {
	b, err := l.s.Register(ctx, l.tokenID, reg)
	if err == nil {
		l.mu.Lock()
		l.builderID = b.ID
		l.mu.Unlock()
	}
	return b, err
}

// Next implements builder.Coordinator.
func (l *Local) Next(ctx context.Context, wait time.Duration) (*builder.Job, error) {
	id, err := l.id(ctx)
	if err != nil {
		return nil, err
	}
	return l.s.Next(ctx, id, wait)
}

// Extend implements builder.Coordinator.
func (l *Local) Extend(ctx context.Context, jobID string) (time.Time, error) {
	id, err := l.id(ctx)
	if err != nil {
		return time.Time{}, err
	}
	return l.s.Extend(ctx, jobID, id)
}

// Fetch implements builder.Coordinator.
func (l *Local) Fetch(ctx context.Context, d blob.Digest) (io.ReadCloser, error) {
	if err := l.s.Fetchable(ctx, d); err != nil {
		return nil, err
	}
	return l.s.store.Get(ctx, d, 0, -1)
}

// Upload implements builder.Coordinator, for in-process builders and for
// the HTTP API alike: the lease, the size limit (Options.MaxUpload), the
// size (unless -1) and the digest (the store's Put) are checked here only.
func (l *Local) Upload(ctx context.Context, jobID string, d blob.Digest, size int64, r io.Reader) error {
	id, err := l.id(ctx)
	if err != nil {
		return err
	}
	if err := l.s.CheckLease(ctx, jobID, id); err != nil {
		return err
	}
	limit := l.s.opts.MaxUpload
	if size > limit {
		return errs.E(errs.TooLarge, "blob is %d bytes, limit %d", size, limit)
	}
	info, err := l.s.store.Put(ctx, &capped{r: r, left: limit}, d)
	if errors.Is(err, errOverLimit) {
		return errs.E(errs.TooLarge, "blob larger than %d bytes", limit)
	}
	if err != nil {
		return err
	}
	if size >= 0 && info.Size != size {
		return errs.E(errs.Invalid, "blob %s is %d bytes, the upload said %d", d, info.Size, size)
	}
	return nil
}

var errOverLimit = errors.New("coord: blob over the upload limit")

// capped fails a read that goes past left bytes, so a blob of unknown
// size stops at the limit instead of filling the store.
type capped struct {
	r    io.Reader
	left int64
}

func (c *capped) Read(p []byte) (int, error) {
	if c.left <= 0 {
		var one [1]byte
		if n, _ := io.ReadFull(c.r, one[:]); n > 0 {
			return 0, errOverLimit
		}
		return 0, io.EOF
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// AppendLog implements builder.Coordinator.
func (l *Local) AppendLog(ctx context.Context, jobID string, chunk []byte) error {
	id, err := l.id(ctx)
	if err != nil {
		return err
	}
	return l.s.AppendLog(ctx, jobID, id, chunk)
}

// Done implements builder.Coordinator.
func (l *Local) Done(ctx context.Context, jobID string, rep builder.Report) error {
	id, err := l.id(ctx)
	if err != nil {
		return err
	}
	return l.s.Done(ctx, jobID, id, rep)
}

// GiveBack implements builder.Coordinator.
func (l *Local) GiveBack(ctx context.Context, jobID string) error {
	id, err := l.id(ctx)
	if err != nil {
		return err
	}
	return l.s.GiveBack(ctx, jobID, id)
}
