package registry

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/registry/device"
	"github.com/afterlife-oss/afterlife/registry/tuf"
)

// A release's publication is logged after its targets are signed (the log
// reads committed events), so the index of its entry is signed into the
// targets afterwards: a second signing of the same targets with one more
// field, `log` (docs/tuf.md).

// LogEntries finds the transparency log's entries of events of one of its
// sources (translog.Log.EntryIndexes).
type LogEntries interface {
	EntryIndexes(ctx context.Context, source string, seqs []int64) (map[int64]int64, error)
}

// maxLogEntriesSigned bounds one signing of log entries; the rest wait for
// the next round.
const maxLogEntriesSigned = 100

// SignLogEntries signs, into the targets of every release whose
// publication entry the log now holds, the index of that entry, in one
// publication under the signing lease. source is the name the log reads
// the registry's events under. It returns how many releases it signed.
func (s *Service) SignLogEntries(ctx context.Context, l LogEntries, source string) (int, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT r.id, e.seq FROM releases r
		JOIN registry_events e ON e.release_id = r.id AND e.kind IN ('published', 'imported')
		WHERE r.log_entry = -1 ORDER BY e.seq LIMIT ?`), maxLogEntriesSigned)
	if err != nil {
		return 0, fmt.Errorf("registry: releases without their log entry: %w", db.Classify(err))
	}
	bySeq := map[int64]string{}
	var seqs []int64
	for rows.Next() {
		var id string
		var seq int64
		if err := rows.Scan(&id, &seq); err != nil {
			rows.Close()
			return 0, fmt.Errorf("registry: releases without their log entry: %w", err)
		}
		bySeq[seq] = id
		seqs = append(seqs, seq)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(seqs) == 0 {
		return 0, db.Classify(err)
	}
	idx, err := l.EntryIndexes(ctx, source, seqs)
	if err != nil || len(idx) == 0 {
		return 0, err
	}
	entries := map[string]int64{}
	var add, undo []tuf.Target
	for _, seq := range seqs {
		i, ok := idx[seq]
		if !ok {
			continue
		}
		rel, err := s.Get(ctx, bySeq[seq])
		if err != nil {
			return 0, err
		}
		undo = append(undo, rel.targets()...)
		rel.LogEntry = &i
		add = append(add, rel.targets()...)
		entries[rel.ID] = i
	}
	// Under the lease: another replica may have signed them meanwhile.
	unsigned := func(ctx context.Context) error {
		for id := range entries {
			var cur int64
			if err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT log_entry FROM releases WHERE id = ?`), id).Scan(&cur); err != nil {
				return db.Classify(err)
			}
			if cur >= 0 {
				return errs.E(errs.Conflict, "release %s already carries its log entry", id)
			}
		}
		return nil
	}
	err = s.change(ctx, unsigned, add, nil, undo, nil, func(tx *sql.Tx) error {
		for id, i := range entries {
			if _, err := tx.ExecContext(ctx, s.db.Q(`UPDATE releases SET log_entry = ? WHERE id = ? AND log_entry = -1`), i, id); err != nil {
				return err
			}
		}
		return nil
	})
	if errs.Is(err, errs.Conflict) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("registry: sign log entries: %w", err)
	}
	return len(entries), nil
}

// KeepLogEntries signs the log entries of new releases into their targets
// (SignLogEntries) every interval, until ctx ends.
func (s *Service) KeepLogEntries(ctx context.Context, l LogEntries, source string, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false
	for {
		n, err := s.SignLogEntries(ctx, l, source)
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			s.log.Warn("could not sign releases' log entries into their targets; devices fall back to the log's unsigned lookup until it works", "err", err)
			failing = true
		case err == nil && n > 0:
			s.log.Info("signed releases' log entries into their targets", "releases", n)
			failing = false
		case err == nil:
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// signLogEntries puts into the targets of a change the log entry each
// release carries now, read under the signing lease: a change computed
// from a release read before its entry was signed must not sign it away.
func (s *Service) signLogEntries(ctx context.Context, lists ...[]tuf.Target) error {
	var ids []any
	seen := map[string]bool{}
	for _, list := range lists {
		for _, t := range list {
			if id, _ := t.Custom["release_id"].(string); id != "" && !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT id, log_entry FROM releases WHERE log_entry >= 0 AND id IN (?`+strings.Repeat(", ?", len(ids)-1)+`)`), ids...)
	if err != nil {
		return fmt.Errorf("registry: log entries of releases: %w", db.Classify(err))
	}
	defer rows.Close()
	entries := map[string]int64{}
	for rows.Next() {
		var id string
		var i int64
		if err := rows.Scan(&id, &i); err != nil {
			return fmt.Errorf("registry: log entries of releases: %w", err)
		}
		entries[id] = i
	}
	if err := rows.Err(); err != nil {
		return db.Classify(err)
	}
	for _, list := range lists {
		for _, t := range list {
			id, _ := t.Custom["release_id"].(string)
			if i, ok := entries[id]; ok {
				t.Custom["log"] = device.SignedLogEntry{Index: i}
			}
		}
	}
	return nil
}
