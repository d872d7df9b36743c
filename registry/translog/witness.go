package translog

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpclient"
	"github.com/afterlife-oss/afterlife/registry/translog/verify"
)

// Witness kinds.
const (
	BuilderWitness = "builder" // a builder agent, over the builder protocol
	OutsideWitness = "outside" // a C2SP tlog-witness the registry pushes to
)

// Outside is an outside witness speaking C2SP tlog-witness.
type Outside struct {
	URL         string // its submission prefix; checkpoints go to URL/add-checkpoint
	VerifierKey string // its cosignature/v1 vkey
	Operator    string // who runs it, for the policy's count of distinct operators
}

// WitnessJob is what a witness is asked to check: the newest checkpoint
// the log signed and a consistency proof from old.
type WitnessJob struct {
	LogKey     string
	Checkpoint []byte
	Size       int64
	Old        int64
	Proof      tlog.TreeProof
}

// WitnessJob returns the newest log-signed checkpoint and a proof that it
// extends the tree of size old (the size the witness cosigned last).
func (l *Log) WitnessJob(ctx context.Context, old int64) (WitnessJob, error) {
	var size int64
	var signed string
	err := l.db.QueryRowContext(ctx, `SELECT size, note FROM translog_checkpoints ORDER BY size DESC LIMIT 1`).Scan(&size, &signed)
	if errors.Is(err, sql.ErrNoRows) {
		return WitnessJob{}, errs.E(errs.NotFound, "the log has no checkpoint yet")
	}
	if err != nil {
		return WitnessJob{}, fmt.Errorf("translog: newest checkpoint: %w", db.Classify(err))
	}
	if old > size {
		return WitnessJob{}, errs.E(errs.Conflict, "the witness has seen size %d, but the log's newest checkpoint has %d", old, size)
	}
	p, err := l.Consistency(ctx, old, size)
	if err != nil {
		return WitnessJob{}, err
	}
	return WitnessJob{LogKey: l.vkey, Checkpoint: []byte(signed), Size: size, Old: old, Proof: p}, nil
}

// AddCosignature records a witness's cosignature line of the checkpoint
// of size size, after checking it with vkey. A builder witness is known
// by its key's name from its first cosignature on, bound to the operator
// its token is bound to; another key under a known name is refused.
func (l *Log) AddCosignature(ctx context.Context, kind, operator, vkey string, size int64, line string) error {
	v, err := fnote.NewVerifierForCosignatureV1(vkey)
	if err != nil {
		return errs.Wrap(errs.Invalid, err, "witness key %q", vkey)
	}
	cp, err := l.CheckpointAt(ctx, size)
	if err != nil {
		return err
	}
	line = strings.TrimSpace(line) + "\n"
	if !strings.HasPrefix(line, "— ") {
		return errs.E(errs.Invalid, "cosignature: want a note signature line \"— <name> <base64>\"")
	}
	logV, err := note.NewVerifier(l.vkey)
	if err != nil {
		return err
	}
	n, err := note.Open(append(cp, line...), note.VerifierList(logV, v))
	if err != nil {
		return errs.Wrap(errs.Invalid, err, "cosignature of checkpoint %d", size)
	}
	found := false
	for _, s := range n.Sigs {
		if s.Name == v.Name() && s.Hash == v.KeyHash() {
			found = true
		}
	}
	if !found {
		return errs.E(errs.Invalid, "the line is not a cosignature by %s", v.Name())
	}
	if operator == "" {
		return errs.E(errs.Forbidden, "a witness counts only for an operator: bind the builder token to one")
	}
	now := l.o.Now()
	return l.db.Tx(ctx, func(tx *sql.Tx) error {
		var have, haveKind string
		err := tx.QueryRowContext(ctx, l.db.Q(`SELECT vkey, kind FROM translog_witnesses WHERE name = ?`), v.Name()).Scan(&have, &haveKind)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if _, err := tx.ExecContext(ctx, l.db.Q(`INSERT INTO translog_witnesses (name, vkey, operator, kind, added_at) VALUES (?, ?, ?, ?, ?)`),
				v.Name(), vkey, operator, kind, db.Millis(now)); err != nil {
				return err
			}
		case err != nil:
			return err
		case have != vkey || haveKind != kind:
			return errs.E(errs.Conflict, "witness %s is known with another key", v.Name())
		default:
			if _, err := tx.ExecContext(ctx, l.db.Q(`UPDATE translog_witnesses SET operator = ? WHERE name = ?`), operator, v.Name()); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, l.db.Q(`INSERT INTO translog_cosignatures (size, witness, line, at) VALUES (?, ?, ?, ?)
			ON CONFLICT (size, witness) DO NOTHING`), size, v.Name(), line, db.Millis(now))
		return err
	})
}

// Witnesses lists the witnesses the log knows, with their operators: with
// the log's key and the quorum, the policy a client checks checkpoints
// against.
func (l *Log) Witnesses(ctx context.Context) ([]verify.Witness, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT name, vkey, operator FROM translog_witnesses ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("translog: witnesses: %w", db.Classify(err))
	}
	defer rows.Close()
	out := []verify.Witness{}
	for rows.Next() {
		var w verify.Witness
		if err := rows.Scan(&w.Name, &w.VerifierKey, &w.Operator); err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, db.Classify(rows.Err())
}

// Policy is the policy the log serves its checkpoints under.
func (l *Log) Policy(ctx context.Context) (verify.Policy, error) {
	ws, err := l.Witnesses(ctx)
	if err != nil {
		return verify.Policy{}, err
	}
	return verify.Policy{Origin: l.origin, LogKey: l.vkey, Witnesses: ws, Quorum: l.o.Quorum}, nil
}

// witnessedSize is the size of the newest checkpoint cosigned by
// witnesses of at least Quorum distinct operators (the newest checkpoint
// when the quorum is 0); 0 when there is none.
func (l *Log) witnessedSize(ctx context.Context) (int64, error) {
	var size int64
	err := l.db.QueryRowContext(ctx, l.db.Q(`SELECT COALESCE(MAX(c.size), 0) FROM translog_checkpoints c
		WHERE (SELECT COUNT(DISTINCT w.operator) FROM translog_cosignatures s JOIN translog_witnesses w ON w.name = s.witness
		       WHERE s.size = c.size) >= ?`), l.o.Quorum).Scan(&size)
	if err != nil {
		return 0, fmt.Errorf("translog: witnessed checkpoint: %w", db.Classify(err))
	}
	return size, nil
}

// pushOutside sends the newest checkpoint to every outside witness
// (C2SP tlog-witness add-checkpoint) and records their cosignatures.
func (l *Log) pushOutside(ctx context.Context) {
	for _, w := range l.o.Outside {
		if err := l.pushTo(ctx, w); err != nil && ctx.Err() == nil {
			l.o.Logger.Warn("translog: outside witness did not cosign", "witness", w.URL, "err", err)
		}
	}
}

func (l *Log) pushTo(ctx context.Context, w Outside) error {
	v, err := fnote.NewVerifierForCosignatureV1(w.VerifierKey)
	if err != nil {
		return errs.Wrap(errs.Invalid, err, "witness key")
	}
	var old int64
	if err := l.db.QueryRowContext(ctx, l.db.Q(`SELECT COALESCE(MAX(size), 0) FROM translog_cosignatures WHERE witness = ?`), v.Name()).Scan(&old); err != nil {
		return db.Classify(err)
	}
	for attempt := 0; attempt < 2; attempt++ {
		job, err := l.WitnessJob(ctx, old)
		if err != nil {
			return err
		}
		if job.Size == old && old > 0 {
			return nil // it cosigned the newest already
		}
		var body bytes.Buffer
		fmt.Fprintf(&body, "old %d\n", job.Old)
		for _, h := range job.Proof {
			body.WriteString(base64.StdEncoding.EncodeToString(h[:]) + "\n")
		}
		body.WriteString("\n")
		body.Write(job.Checkpoint)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(w.URL, "/")+"/add-checkpoint", &body)
		if err != nil {
			return err
		}
		resp, err := l.client.Do(req)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			return l.AddCosignature(ctx, OutsideWitness, w.Operator, w.VerifierKey, job.Size, string(b))
		case http.StatusConflict:
			// The witness has seen another size: its body says which.
			n, perr := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
			if perr != nil || n == old {
				return errs.E(errs.Conflict, "witness answered 409 %q", b)
			}
			old = n
		default:
			return errs.E(httpclient.KindOfStatus(resp.StatusCode), "witness answered %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
		}
	}
	return errs.E(errs.Conflict, "witness keeps answering 409")
}

func newWitnessClient() *http.Client {
	return httpclient.Standard(httpclient.Options{RetryMax: 2, Timeout: 15 * time.Second})
}
