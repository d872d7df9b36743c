package builder

import (
	"fmt"
	"io"
)

// DefaultMaxLogBytes bounds a stored build log when nothing else does.
const DefaultMaxLogBytes = 16 << 20

// logNoteRoom is what a CappedLog keeps free for its truncation note.
const logNoteRoom = 160

// CappedLog passes at most max bytes of a build log to w: the head as it
// comes, then, on Close, a note saying how much was cut and the tail. The
// builder writes its log through one, and the coordinator caps a log a
// builder uploaded too large the same way, so a stored log never exceeds
// max however much a build prints.
type CappedLog struct {
	w        io.Writer
	max      int64
	head     int64  // head bytes still to pass through
	tailSize int    // how much tail is kept
	tail     []byte // the last bytes written after the head, up to 2*tailSize
	after    int64  // bytes written after the head
	err      error
}

// NewCappedLog caps what reaches w at limit bytes; limit <= 0 does not cap.
func NewCappedLog(w io.Writer, limit int64) *CappedLog {
	c := &CappedLog{w: w, max: limit}
	if limit > 0 {
		c.head = limit / 2
		c.tailSize = int(max(0, limit-c.head-logNoteRoom))
	}
	return c
}

// Write keeps p's part that falls in the head or the tail. It never fails
// because of the cap; it fails only when w does.
func (c *CappedLog) Write(p []byte) (int, error) {
	n := len(p)
	if c.err != nil {
		return 0, c.err
	}
	if c.max <= 0 {
		_, c.err = c.w.Write(p)
		return n, c.err
	}
	if c.head > 0 {
		k := int(min(c.head, int64(len(p))))
		if _, c.err = c.w.Write(p[:k]); c.err != nil {
			return 0, c.err
		}
		c.head -= int64(k)
		p = p[k:]
	}
	if len(p) == 0 || c.tailSize == 0 {
		c.after += int64(len(p))
		return n, nil
	}
	c.after += int64(len(p))
	if len(p) >= c.tailSize {
		c.tail = append(c.tail[:0], p[len(p)-c.tailSize:]...)
		return n, nil
	}
	c.tail = append(c.tail, p...)
	if len(c.tail) > 2*c.tailSize {
		c.tail = append(c.tail[:0], c.tail[len(c.tail)-c.tailSize:]...)
	}
	return n, nil
}

// Cut is how many bytes the cap dropped so far.
func (c *CappedLog) Cut() int64 {
	return max(0, c.after-int64(min(len(c.tail), c.tailSize)))
}

// Close writes the note (when anything was cut) and the tail to w.
func (c *CappedLog) Close() error {
	if c.err != nil || c.max <= 0 {
		return c.err
	}
	tail := c.tail
	if len(tail) > c.tailSize {
		tail = tail[len(tail)-c.tailSize:]
	}
	if cut := c.Cut(); cut > 0 {
		if _, c.err = fmt.Fprintf(c.w, "\n==> log truncated: %d bytes cut between its head and its tail (log limit %d bytes)\n", cut, c.max); c.err != nil {
			return c.err
		}
	}
	_, c.err = c.w.Write(tail)
	c.tail, c.after = nil, 0
	return c.err
}
