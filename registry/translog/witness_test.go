package translog

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/internal/testenv"
)

// c2spWitness is an outside witness as C2SP tlog-witness describes it:
// POST /add-checkpoint with "old <size>", the consistency proof, a blank
// line and the checkpoint; 409 with its own size when old is not what it
// saw; 422 when the proof does not verify; 200 with its cosignature.
type c2spWitness struct {
	mu     sync.Mutex
	logKey string
	signer *fnote.Signer
	vkey   string
	size   int64
	root   tlog.Hash
	calls  int
}

func newC2SPWitness(t *testing.T, name, logKey string) *c2spWitness {
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	cvkey, err := fnote.VKeyToCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return &c2spWitness{logKey: logKey, signer: s, vkey: cvkey}
}

func (w *c2spWitness) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	if r.Method != http.MethodPost || r.URL.Path != "/add-checkpoint" {
		http.NotFound(rw, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	head, cp, ok := bytes.Cut(body, []byte("\n\n"))
	sc := bufio.NewScanner(bytes.NewReader(head))
	sc.Scan()
	old, err := strconv.ParseInt(strings.TrimPrefix(sc.Text(), "old "), 10, 64)
	if !ok || err != nil {
		http.Error(rw, "bad request", http.StatusBadRequest)
		return
	}
	var proof tlog.TreeProof
	for sc.Scan() {
		h, err := base64.StdEncoding.DecodeString(sc.Text())
		if err != nil || len(h) != 32 {
			http.Error(rw, "bad proof", http.StatusBadRequest)
			return
		}
		proof = append(proof, tlog.Hash(h))
	}
	v, _ := note.NewVerifier(w.logKey)
	n, err := note.Open(cp, note.VerifierList(v))
	if err != nil {
		http.Error(rw, "unknown log or bad signature", http.StatusForbidden)
		return
	}
	lines := strings.SplitN(n.Text, "\n", 4)
	size, _ := strconv.ParseInt(lines[1], 10, 64)
	rootB, _ := base64.StdEncoding.DecodeString(lines[2])
	root := tlog.Hash(rootB)
	if old != w.size {
		rw.Header().Set("Content-Type", "text/x.tlog.size")
		rw.WriteHeader(http.StatusConflict)
		fmt.Fprintf(rw, "%d\n", w.size)
		return
	}
	if old > 0 && old < size {
		if err := tlog.CheckTree(proof, size, root, old, w.root); err != nil {
			http.Error(rw, "inconsistent", http.StatusUnprocessableEntity)
			return
		}
	}
	signed, err := note.Sign(&note.Note{Text: n.Text}, w.signer)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusInternalServerError)
		return
	}
	w.size, w.root = size, root
	_, sigs, _ := strings.Cut(string(signed), "\n\n")
	rw.Write([]byte(sigs))
}

func TestOutsideWitnessesCosignOverC2SPTlogWitness(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		src := &memSource{}
		for i := 0; i < 5; i++ {
			src.add(t0.Add(time.Duration(i)*time.Second), "product.status", "p", map[string]any{"n": i})
		}
		keys := t.TempDir()
		// The log's key is made at the first open; the witnesses need it.
		first := openLog(t, d, keys, "a", map[string]Source{"s": src})
		w1 := newC2SPWitness(t, "witness.one.example", first.VerifierKey())
		w2 := newC2SPWitness(t, "witness.two.example", first.VerifierKey())
		s1, s2 := httptest.NewServer(w1), httptest.NewServer(w2)
		defer s1.Close()
		defer s2.Close()
		l, err := Open(ctx, Options{DB: d, KeyDir: keys, Sources: map[string]Source{"s": src}, Quorum: 2,
			Outside: []Outside{{URL: s1.URL, VerifierKey: w1.vkey, Operator: "one"}, {URL: s2.URL, VerifierKey: w2.vkey, Operator: "two"}},
			Now:     func() time.Time { return t0 }, Logger: testenv.Logger(t), Replica: "a"})
		if err != nil {
			t.Fatal(err)
		}
		step := func() {
			t.Helper()
			if _, err := l.Tick(ctx, t0, time.Minute); err != nil {
				t.Fatal(err)
			}
			l.pushOutside(ctx)
		}

		t.Run("the checkpoint is served with both witnesses' cosignatures", func(t *testing.T) {
			step()
			cp, size, err := l.Checkpoint(ctx)
			if err != nil || size != 5 {
				t.Fatalf("checkpoint %d, %v; want 5", size, err)
			}
			pol, _ := l.Policy(ctx)
			got, err := pol.Checkpoint(cp)
			if err != nil || len(got.Operators) != 2 {
				t.Fatalf("served checkpoint: %v, operators %v\n%s", err, got.Operators, cp)
			}
		})
		t.Run("each new checkpoint comes with a proof from the witness's last one", func(t *testing.T) {
			for i := 5; i < 300; i++ {
				src.add(t0.Add(time.Duration(i)*time.Second), "product.status", "p", map[string]any{"n": i})
			}
			step()
			if _, size, err := l.Checkpoint(ctx); err != nil || size != 300 {
				t.Fatalf("checkpoint %d, %v; want 300", size, err)
			}
		})
		t.Run("a witness that lost its state answers 409 and gets the proof it can check", func(t *testing.T) {
			w2.mu.Lock()
			w2.size, w2.root = 0, tlog.Hash{}
			w2.mu.Unlock()
			src.add(t0.Add(time.Hour), "product.status", "p", map[string]any{"n": 300})
			step()
			if _, size, err := l.Checkpoint(ctx); err != nil || size != 301 {
				t.Fatalf("checkpoint %d, %v; want 301", size, err)
			}
		})
		t.Run("with one witness down the newest checkpoint is not served", func(t *testing.T) {
			s2.Close()
			src.add(t0.Add(2*time.Hour), "product.status", "p", map[string]any{"n": 301})
			step()
			if _, size, err := l.Checkpoint(ctx); err != nil || size != 301 {
				t.Fatalf("checkpoint %d, %v; want the last one both cosigned, 301", size, err)
			}
		})
	})
}
