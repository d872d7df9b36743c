package translog

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

// pending is an event waiting to be appended, with the source it came from.
type pending struct {
	source string
	ev     Event
}

// TickResult says what one writer tick did.
type TickResult struct {
	Leader   bool  // this replica held the writer lease
	Appended int   // entries appended
	Size     int64 // the log's size afterwards
}

// Tick appends, if this replica gets the writer lease, every event the
// sources hold beyond their cursors, in batches of one transaction each.
// Events of several sources are merged by time, so a first start
// backfills the whole history in order.
func (l *Log) Tick(ctx context.Context, now time.Time, leaseTTL time.Duration) (TickResult, error) {
	var res TickResult
	ok, err := l.db.TryLease(ctx, WriterLease, l.o.Replica, leaseTTL, now)
	if err != nil || !ok {
		return res, err
	}
	res.Leader = true
	for {
		batch, err := l.pendingBatch(ctx)
		if err != nil {
			return res, err
		}
		if len(batch) == 0 {
			size, err := l.ensureCheckpoint(ctx, now)
			res.Size = size
			return res, err
		}
		n, size, err := l.appendBatch(ctx, batch, now)
		res.Appended += n
		res.Size = size
		if err != nil {
			return res, err
		}
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
	}
}

// Run ticks every interval until ctx ends.
func (l *Log) Run(ctx context.Context, every time.Duration) error {
	ttl := max(2*every, 10*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	// Outside witnesses are pushed to beside the appends, one round at a
	// time, so a slow or unreachable witness never holds the log back.
	var pushing sync.WaitGroup
	busy := make(chan struct{}, 1)
	defer pushing.Wait()
	for {
		res, err := l.Tick(ctx, l.o.Now(), ttl)
		if err != nil && ctx.Err() == nil {
			l.o.Logger.Error("translog: append failed; the next tick retries", "replica", l.o.Replica, "err", err)
		}
		if res.Leader && err == nil && len(l.o.Outside) > 0 {
			select {
			case busy <- struct{}{}:
				pushing.Add(1)
				go func() {
					defer pushing.Done()
					defer func() { <-busy }()
					l.pushOutside(ctx)
				}()
			default: // the last round is still pushing
			}
		}
		select {
		case <-ctx.Done():
			releaseCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = l.db.ReleaseLease(releaseCtx, WriterLease, l.o.Replica)
			cancel()
			return nil
		case <-t.C:
		}
	}
}

// pendingBatch reads up to a batch of events past each source's cursor
// and merges them: each source's events stay in their seq order (a
// source's times need not rise with its seq: two writers' clocks), and of
// the sources' next events the earliest goes first, so a first start
// backfills the parts' histories interleaved in time. A source that
// returned a full batch may hold more, possibly earlier than another's
// next: the merge stops when such a source's events are used up.
func (l *Log) pendingBatch(ctx context.Context) ([]pending, error) {
	cursors, err := l.cursors(ctx, l.db.DB)
	if err != nil {
		return nil, err
	}
	queues := make([][]Event, len(l.names))
	full := make([]bool, len(l.names))
	for i, name := range l.names {
		evs, err := l.o.Sources[name].After(ctx, cursors[name], l.o.Batch)
		if err != nil {
			return nil, fmt.Errorf("translog: read source %s: %w", name, err)
		}
		queues[i], full[i] = evs, len(evs) == l.o.Batch
	}
	var out []pending
	for len(out) < l.o.Batch {
		next := -1
		for i, q := range queues {
			if len(q) == 0 {
				if full[i] {
					return out, nil
				}
				continue
			}
			if next < 0 || q[0].At.Before(queues[next][0].At) {
				next = i
			}
		}
		if next < 0 {
			break
		}
		out = append(out, pending{source: l.names[next], ev: queues[next][0]})
		queues[next] = queues[next][1:]
	}
	return out, nil
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (l *Log) cursors(ctx context.Context, q querier) (map[string]int64, error) {
	rows, err := q.QueryContext(ctx, `SELECT source, seq FROM translog_cursors`)
	if err != nil {
		return nil, fmt.Errorf("translog: cursors: %w", db.Classify(err))
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var s string
		var n int64
		if err := rows.Scan(&s, &n); err != nil {
			return nil, err
		}
		out[s] = n
	}
	return out, db.Classify(rows.Err())
}

// appendBatch appends events in one transaction: entries, tree hashes,
// cursors and the signed checkpoint commit together or not at all. An
// event at or below its source's cursor (another writer took it) is
// skipped, and the unique (source, seq) index refuses a duplicate.
func (l *Log) appendBatch(ctx context.Context, batch []pending, now time.Time) (int, int64, error) {
	var appended int
	var size int64
	err := l.db.Tx(ctx, func(tx *sql.Tx) error {
		appended = 0
		cursors, err := l.cursors(ctx, tx)
		if err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(idx) + 1, 0) FROM translog_entries`).Scan(&size); err != nil {
			return err
		}
		hr := &txHashes{l: l, q: tx, cache: map[int64]tlog.Hash{}}
		moved := map[string]int64{}
		for _, p := range batch {
			if p.ev.Seq <= cursors[p.source] {
				continue
			}
			if p.ev.Seq != cursors[p.source]+1 {
				return errs.E(errs.Internal, "translog: source %s skipped from seq %d to %d", p.source, cursors[p.source], p.ev.Seq)
			}
			cursors[p.source] = p.ev.Seq
			moved[p.source] = p.ev.Seq
			if p.ev.Type == "" {
				continue // an event the log does not publish (see Event.Type)
			}
			data, err := l.leaf(ctx, tx, p.ev, size)
			if err != nil {
				return err
			}
			if len(data) > 0xffff {
				return errs.E(errs.TooLarge, "translog: entry of %s seq %d is %d bytes; an entry bundle holds at most 65535", p.source, p.ev.Seq, len(data))
			}
			hashes, err := tlog.StoredHashes(size, data, hr)
			if err != nil {
				return fmt.Errorf("translog: hash entry %d: %w", size, err)
			}
			base := tlog.StoredHashIndex(0, size)
			for i, h := range hashes {
				id := base + int64(i)
				if _, err := tx.ExecContext(ctx, l.db.Q(`INSERT INTO translog_hashes (id, hash) VALUES (?, ?)`), id, hex.EncodeToString(h[:])); err != nil {
					return err
				}
				hr.cache[id] = h
			}
			subject := p.ev.Subject
			if p.ev.Seal != nil {
				subject = "" // a sealed entry names nothing, not even in the index
			}
			if _, err := tx.ExecContext(ctx, l.db.Q(`INSERT INTO translog_entries (idx, source, source_seq, kind, subject, data, at) VALUES (?, ?, ?, ?, ?, ?, ?)`),
				size, p.source, p.ev.Seq, p.ev.Type, subject, string(data), db.Millis(p.ev.At)); err != nil {
				return err
			}
			size++
			appended++
		}
		for src, seq := range moved {
			if _, err := tx.ExecContext(ctx, l.db.Q(`INSERT INTO translog_cursors (source, seq) VALUES (?, ?)
				ON CONFLICT (source) DO UPDATE SET seq = excluded.seq`), src, seq); err != nil {
				return err
			}
		}
		if appended == 0 {
			return nil
		}
		return l.signCheckpoint(ctx, tx, hr, size, now)
	})
	if err != nil {
		return 0, 0, fmt.Errorf("translog: append: %w", err)
	}
	return appended, size, nil
}

// ensureCheckpoint signs a checkpoint when the log has entries and none
// is signed at its size (a log restored from before checkpoints, or the
// first start of an empty one stays without).
func (l *Log) ensureCheckpoint(ctx context.Context, now time.Time) (int64, error) {
	size, err := l.Size(ctx)
	if err != nil || size == 0 {
		return size, err
	}
	var n int
	if err := l.db.QueryRowContext(ctx, l.db.Q(`SELECT COUNT(*) FROM translog_checkpoints WHERE size = ?`), size).Scan(&n); err != nil {
		return size, fmt.Errorf("translog: checkpoint: %w", db.Classify(err))
	}
	if n > 0 {
		return size, nil
	}
	return size, l.db.Tx(ctx, func(tx *sql.Tx) error {
		return l.signCheckpoint(ctx, tx, &txHashes{l: l, q: tx, cache: map[int64]tlog.Hash{}}, size, now)
	})
}

func (l *Log) signCheckpoint(ctx context.Context, tx *sql.Tx, hr tlog.HashReader, size int64, now time.Time) error {
	root, err := tlog.TreeHash(size, hr)
	if err != nil {
		return fmt.Errorf("translog: tree hash at %d: %w", size, err)
	}
	body := fmt.Sprintf("%s\n%d\n%s\n", l.origin, size, root.String())
	signed, err := note.Sign(&note.Note{Text: body}, l.signer)
	if err != nil {
		return fmt.Errorf("translog: sign checkpoint: %w", err)
	}
	_, err = tx.ExecContext(ctx, l.db.Q(`INSERT INTO translog_checkpoints (size, note, at) VALUES (?, ?, ?) ON CONFLICT (size) DO NOTHING`),
		size, string(signed), db.Millis(now))
	return err
}

// leaf is the entry's bytes: canonical JSON (sorted keys). A sealed
// entry is its type, time and commitment only; an entry that opens a
// commitment carries its salt.
func (l *Log) leaf(ctx context.Context, tx *sql.Tx, ev Event, idx int64) ([]byte, error) {
	m := map[string]any{"type": ev.Type, "at": ev.At.UTC().Format(time.RFC3339Nano)}
	if ev.Seal != nil {
		if ev.Subject == "" {
			return nil, errs.E(errs.Internal, "translog: a sealed event needs a subject")
		}
		salt, err := newSalt()
		if err != nil {
			return nil, err
		}
		c := Commit(salt, ev.Seal.Product, ev.Seal.Manifest)
		if _, err := tx.ExecContext(ctx, l.db.Q(`INSERT INTO translog_commitments (subject, salt, commitment, idx) VALUES (?, ?, ?, ?)`),
			ev.Subject, salt, c, idx); err != nil {
			return nil, fmt.Errorf("translog: record commitment of %s: %w", ev.Subject, err)
		}
		m["commitment"] = c
		return json.Marshal(m)
	}
	for k, v := range ev.Fields {
		m[k] = v
	}
	if ev.Subject != "" {
		m["subject"] = ev.Subject
	}
	if ev.Opens != "" {
		var salt, c string
		var at int64
		err := tx.QueryRowContext(ctx, l.db.Q(`SELECT salt, commitment, idx FROM translog_commitments WHERE subject = ?`), ev.Opens).Scan(&salt, &c, &at)
		switch {
		case err == sql.ErrNoRows:
			// Released without ever being sealed in the log's view:
			// nothing to open.
		case err != nil:
			return nil, err
		default:
			m["salt"], m["commitment"], m["sealed_entry"] = salt, c, at
			if _, err := tx.ExecContext(ctx, l.db.Q(`UPDATE translog_commitments SET opened = ? WHERE subject = ? AND opened < 0`), idx, ev.Opens); err != nil {
				return nil, err
			}
		}
	}
	return json.Marshal(m)
}

// txHashes reads stored hashes inside a transaction, with those written
// earlier in it cached.
type txHashes struct {
	l     *Log
	q     querier
	cache map[int64]tlog.Hash
}

func (h *txHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	return readHashes(context.Background(), h.l.db, h.q, h.cache, indexes)
}

func readHashes(ctx context.Context, d *db.DB, q querier, cache map[int64]tlog.Hash, indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var missing []any
	pos := map[int64][]int{}
	for i, id := range indexes {
		if h, ok := cache[id]; ok {
			out[i] = h
			continue
		}
		if _, seen := pos[id]; !seen {
			missing = append(missing, id)
		}
		pos[id] = append(pos[id], i)
	}
	for len(missing) > 0 {
		chunk := missing[:min(len(missing), 500)]
		missing = missing[len(chunk):]
		in := strings.TrimSuffix(strings.Repeat("?, ", len(chunk)), ", ")
		rows, err := q.QueryContext(ctx, d.Q(`SELECT id, hash FROM translog_hashes WHERE id IN (`+in+`)`), chunk...)
		if err != nil {
			return nil, fmt.Errorf("translog: read hashes: %w", db.Classify(err))
		}
		found := 0
		for rows.Next() {
			var id int64
			var hx string
			if err := rows.Scan(&id, &hx); err != nil {
				rows.Close()
				return nil, err
			}
			b, err := hex.DecodeString(hx)
			if err != nil || len(b) != tlog.HashSize {
				rows.Close()
				return nil, errs.E(errs.Internal, "translog: stored hash %d is corrupt", id)
			}
			var h tlog.Hash
			copy(h[:], b)
			if cache != nil {
				cache[id] = h
			}
			for _, i := range pos[id] {
				out[i] = h
			}
			found++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, db.Classify(err)
		}
		if found != len(chunk) {
			return nil, errs.E(errs.NotFound, "translog: %d of %d stored hashes are missing", len(chunk)-found, len(chunk))
		}
	}
	return out, nil
}

// Size is the number of entries in the log.
func (l *Log) Size(ctx context.Context) (int64, error) {
	var size int64
	if err := l.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(idx) + 1, 0) FROM translog_entries`).Scan(&size); err != nil {
		return 0, fmt.Errorf("translog: size: %w", db.Classify(err))
	}
	return size, nil
}
