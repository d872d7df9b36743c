package witness_test

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/witness"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/testenv"
	"github.com/afterlife-oss/afterlife/registry/translog"
	"github.com/afterlife-oss/afterlife/registry/translog/verify"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// events is a source of n events; tag tells two histories apart.
type events struct {
	n   int
	tag string
}

func (s *events) After(_ context.Context, seq int64, limit int) ([]translog.Event, error) {
	var out []translog.Event
	for i := seq + 1; i <= int64(s.n) && len(out) < limit; i++ {
		out = append(out, translog.Event{Seq: i, At: time.Unix(i, 0), Type: "product.status", Subject: "p",
			Fields: map[string]any{"n": i, "history": s.tag}})
	}
	return out, nil
}

// asBuilder is the log as a builder of operator sees it through the farm.
type asBuilder struct {
	l        *translog.Log
	operator string
}

func (a asBuilder) WitnessJob(ctx context.Context, old int64) (builder.WitnessJob, error) {
	j, err := a.l.WitnessJob(ctx, old)
	if err != nil {
		return builder.WitnessJob{}, err
	}
	out := builder.WitnessJob{LogKey: j.LogKey, Checkpoint: string(j.Checkpoint), Old: j.Old}
	for _, h := range j.Proof {
		out.Proof = append(out.Proof, base64.StdEncoding.EncodeToString(h[:]))
	}
	return out, nil
}

func (a asBuilder) Cosign(ctx context.Context, c builder.Cosignature) error {
	return a.l.AddCosignature(ctx, translog.BuilderWitness, a.operator, c.VerifierKey, c.Size, c.Signature)
}

func openLog(t *testing.T, d *db.DB, keys string, src *events, quorum int) *translog.Log {
	t.Helper()
	l, err := translog.Open(context.Background(), translog.Options{DB: d, KeyDir: keys, Origin: "afterlife.test/log",
		Sources: map[string]translog.Source{"s": src}, Quorum: quorum, Logger: testenv.Logger(t), Replica: "r"})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestABuilderWitnessCosignsOnlyALogThatGrew(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		src := &events{n: 10}
		keys := t.TempDir()
		l := openLog(t, d, keys, src, 2)
		tick := func(l *translog.Log) {
			t.Helper()
			if _, err := l.Tick(ctx, time.Now(), time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		tick(l)
		dir := t.TempDir()
		newWitness := func(name, operator string, log *translog.Log) *witness.Witness {
			w, err := witness.New(witness.Options{Log: asBuilder{log, operator}, KeyFile: filepath.Join(dir, name+".witness"), Name: name, Logger: testenv.Logger(t)})
			if err != nil {
				t.Fatal(err)
			}
			return w
		}
		a1, a2, b := newWitness("a1", "lab-a", l), newWitness("a2", "lab-a", l), newWitness("b", "lab-b", l)

		t.Run("until witnesses of two operators cosign, no checkpoint is served", func(t *testing.T) {
			for _, w := range []*witness.Witness{a1, a2} {
				if size, err := w.Once(ctx); err != nil || size != 10 {
					t.Fatalf("cosigned %d, %v; want 10", size, err)
				}
			}
			if _, _, err := l.Checkpoint(ctx); !errs.Is(err, errs.NotFound) {
				t.Fatalf("two witnesses of one operator made a checkpoint servable: %v", err)
			}
			if size, err := b.Once(ctx); err != nil || size != 10 {
				t.Fatalf("cosigned %d, %v; want 10", size, err)
			}
			cp, size, err := l.Checkpoint(ctx)
			if err != nil || size != 10 {
				t.Fatalf("served checkpoint %d, %v; want 10", size, err)
			}
			pol, err := l.Policy(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got, err := pol.Checkpoint(cp)
			if err != nil {
				t.Fatalf("the served checkpoint does not meet the policy: %v\n%s", err, cp)
			}
			if len(got.Operators) != 2 {
				t.Fatalf("operators %v, want lab-a and lab-b", got.Operators)
			}
			pol.Quorum = 3
			if _, err := pol.Checkpoint(cp); !errors.Is(err, verify.ErrPolicy) {
				t.Fatalf("a quorum of 3 accepted 2 operators: %v", err)
			}
		})
		t.Run("a witness cosigns a checkpoint that extends what it cosigned", func(t *testing.T) {
			src.n = 300
			tick(l)
			if size, err := a1.Once(ctx); err != nil || size != 300 {
				t.Fatalf("cosigned %d, %v; want 300", size, err)
			}
		})
		t.Run("a witness refuses a rewritten log signed with the same key", func(t *testing.T) {
			// Another history under the same key: what an operator who
			// rewrote the log would show.
			other := dbtest.SQLite(t)
			forkKeys := t.TempDir()
			key, err := os.ReadFile(filepath.Join(keys, translog.KeyFile))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(forkKeys, translog.KeyFile), key, 0o600); err != nil {
				t.Fatal(err)
			}
			fork := openLog(t, other, forkKeys, &events{n: 400, tag: "rewritten"}, 0)
			if _, err := fork.Tick(ctx, time.Now(), time.Minute); err != nil {
				t.Fatal(err)
			}
			w, err := witness.New(witness.Options{Log: asBuilder{fork, "lab-a"}, KeyFile: filepath.Join(dir, "a1.witness"), Logger: testenv.Logger(t)})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Once(ctx); !errors.Is(err, witness.ErrNotConsistent) {
				t.Fatalf("the witness cosigned a rewritten log: %v", err)
			}
			// Its memory is unchanged: the real log still gets its cosignature.
			src.n = 310
			tick(l)
			if size, err := a1.Once(ctx); err != nil || size != 310 {
				t.Fatalf("cosigned %d, %v; want 310", size, err)
			}
		})
		t.Run("a builder of no operator counts for nothing", func(t *testing.T) {
			w := newWitness("unbound", "", l)
			if _, err := w.Once(ctx); !errs.Is(err, errs.Forbidden) {
				t.Fatalf("an unbound builder's cosignature was taken: %v", err)
			}
		})
	})
}
