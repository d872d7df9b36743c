package agent

import (
	"bytes"
	"context"
	"io"
	"os"
	"sync"
	"time"

	"github.com/afterlife-oss/afterlife/builder"
)

func bytesReader(b []byte) io.ReadSeeker { return bytes.NewReader(b) }

// liveLog writes the build log to a local file (uploaded whole at the end)
// and sends it to the coordinator in chunks while the build runs, so the
// web can follow it. A failing chunk is dropped: the final log has it.
type liveLog struct {
	c     builder.Coordinator
	jobID string
	file  *os.File

	mu      sync.Mutex
	buf     bytes.Buffer
	closed  bool
	stop    chan struct{}
	stopped chan struct{}
}

const liveChunk = 64 << 10

func newLiveLog(c builder.Coordinator, jobID string, f *os.File, every time.Duration) *liveLog {
	l := &liveLog{c: c, jobID: jobID, file: f, stop: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(l.stopped)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				l.flush()
				return
			case <-t.C:
				l.flush()
			}
		}
	}()
	return l
}

func (l *liveLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return len(p), nil
	}
	if _, err := l.file.Write(p); err != nil {
		return 0, err
	}
	if l.buf.Len() < 4*liveChunk {
		l.buf.Write(p)
	}
	return len(p), nil
}

func (l *liveLog) flush() {
	for {
		l.mu.Lock()
		if l.buf.Len() == 0 {
			l.mu.Unlock()
			return
		}
		chunk := bytes.Clone(l.buf.Next(liveChunk))
		l.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := l.c.AppendLog(ctx, l.jobID, chunk)
		cancel()
		if err != nil {
			return
		}
	}
}

// close stops the live stream after a last flush; later writes are
// dropped. It is safe to call more than once.
func (l *liveLog) close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	l.mu.Unlock()
	close(l.stop)
	<-l.stopped
}
