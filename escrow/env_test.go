package escrow

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/afterlife-oss/afterlife/escrow/manifest"
	"github.com/afterlife-oss/afterlife/escrow/receipt"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/blob/fsstore"
	"github.com/afterlife-oss/afterlife/internal/blob/s3store"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/principal"
	"github.com/afterlife-oss/afterlife/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// clock is an injected time source that only moves when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *clock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// products is the registry's side of the contract, kept in memory.
type products struct {
	mu       sync.Mutex
	owners   map[string]string
	handedTo []string
}

func (p *products) Vendor(_ context.Context, id string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	org, ok := p.owners[id]
	if !ok {
		return "", errs.E(errs.NotFound, "product %s not found", id)
	}
	return org, nil
}

// Notify is the catalog's hand-over, as an after-release consumer.
func (p *products) Notify(_ context.Context, n Notice) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.handedTo = append(p.handedTo, n.Product)
	return nil
}

func (p *products) handedOver() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.handedTo...)
}

type env struct {
	svc      *Service
	db       *db.DB
	dbURL    string
	blobs    blob.Store
	disk     *fsstore.Store // nil on MinIO
	clock    *clock
	products *products
	identity *age.X25519Identity
	key      ed25519.PrivateKey
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

var (
	acme    = principal.Principal{TokenID: "t1", Name: "acme-ci", Role: principal.Vendor, Org: "acme"}
	globex  = principal.Principal{TokenID: "t2", Name: "globex-ci", Role: principal.Vendor, Org: "globex"}
	admin   = principal.Principal{TokenID: "t3", Name: "root", Role: principal.Admin}
	nobody  = principal.Principal{}
	builder = principal.Principal{TokenID: "t4", Name: "b1", Role: principal.Builder}
)

// each runs fn on SQLite with a disk store and on PostgreSQL with MinIO.
func each(t *testing.T, fn func(t *testing.T, e *env)) {
	t.Helper()
	t.Run("sqlite+disk", func(t *testing.T) {
		store, err := fsstore.New(filepath.Join(t.TempDir(), "blobs"))
		if err != nil {
			t.Fatal(err)
		}
		url := "sqlite:" + filepath.Join(t.TempDir(), "afterlife.db")
		e := newEnv(t, url, store)
		e.disk = store
		fn(t, e)
	})
	t.Run("postgres+minio", func(t *testing.T) {
		fn(t, newEnv(t, testenv.Postgres(t), minioStore(t, false)))
	})
}

func mustDisk(t testing.TB) *fsstore.Store {
	t.Helper()
	s, err := fsstore.New(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func minioStore(t *testing.T, lock bool) blob.Store {
	t.Helper()
	m := testenv.MinIO(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := newS3(ctx, m, m.NewBucket(t, lock), t.TempDir())
	if err != nil {
		t.Fatalf("s3store: %v", err)
	}
	return s
}

// newS3 opens a store on bucket, spooling large Puts of unknown digest in
// spool as serve has it do.
func newS3(ctx context.Context, m *testenv.MinIOServer, bucket, spool string) (blob.Store, error) {
	cfg := m.Config(bucket)
	cfg.SpoolDir = spool
	return s3store.New(ctx, cfg)
}

func openDB(t testing.TB, url string) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), url)
	if err != nil {
		t.Fatalf("open %s: %v (run scripts/test-deps.sh if PostgreSQL is missing)", url, err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func newEnv(t testing.TB, url string, store blob.Store) *env {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	e := &env{dbURL: url, blobs: store, clock: &clock{t: t0}, identity: id, key: key,
		products: &products{owners: map[string]string{"demo-cam": "acme", "other-cam": "acme", "rocket": "globex"}}}
	e.db = openDB(t, url)
	e.svc = e.service(t, e.db, Options{})
	return e
}

// service builds another Service on the same data (as another replica
// would), with o's limits and TTLs.
func (e *env) service(t testing.TB, d *db.DB, o Options) *Service {
	t.Helper()
	o.DB, o.Blobs, o.Products, o.Identity, o.ReceiptKey, o.Now = d, e.blobs, e.products, e.identity, e.key, e.clock.Now
	if o.AfterRelease == nil {
		o.AfterRelease = map[string]AfterRelease{"hand-over": e.products}
	}
	if o.Logger == nil {
		o.Logger = testenv.Logger(t)
	}
	s, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// entries describes files (and links, as "->target" values) as a manifest.
func entries(files map[string]string) []manifest.Entry {
	var out []manifest.Entry
	for p, content := range files {
		if target, ok := bytes.CutPrefix([]byte(content), []byte("->")); ok {
			out = append(out, manifest.Entry{Path: p, Kind: manifest.Other, Link: string(target)})
			continue
		}
		out = append(out, manifest.Entry{Path: p, Size: int64(len(content)), SHA256: hexSum([]byte(content)), Kind: manifest.InferKind(p)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

var demoFiles = map[string]string{
	"docs/board.pdf":  "%PDF board schematics",
	"src/main.c":      "int main(void) { return 0; }\n",
	"keys/unlock.pem": "-----BEGIN KEY-----\nsecret\n-----END KEY-----\n",
	"src/latest.c":    "->main.c",
	"empty.bin":       "",
}

// deposit creates, uploads and commits a deposit.
func (e *env) deposit(t testing.TB, p principal.Principal, product, pol string, files map[string]string) (Deposit, receipt.Signed) {
	t.Helper()
	return e.depositReq(t, p, CreateRequest{Product: product, Policy: pol, Manifest: entries(files), Rights: allPublic}, files)
}

// allPublic makes every file public, as all were before rights classes.
var allPublic = []manifest.RightsRule{{Pattern: "**", Rights: manifest.Public}}

// depositReq creates the deposit req asks for, uploads files and commits.
func (e *env) depositReq(t testing.TB, p principal.Principal, req CreateRequest, files map[string]string) (Deposit, receipt.Signed) {
	t.Helper()
	ctx := context.Background()
	d, err := e.svc.Create(ctx, p, req)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	for path, content := range files {
		if bytes.HasPrefix([]byte(content), []byte("->")) {
			continue
		}
		if _, err := e.svc.PutFile(ctx, p, d.ID, path, bytes.NewReader([]byte(content))); err != nil {
			t.Fatalf("put %s: %v", path, err)
		}
	}
	r, err := e.svc.Commit(ctx, p, d.ID)
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	return d, r
}

func (e *env) blobCount(t testing.TB) int {
	t.Helper()
	n := 0
	if err := e.blobs.Walk(context.Background(), func(blob.Info) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func wantKind(t testing.TB, err error, k errs.Kind) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want kind %v", k)
	}
	if !errs.Is(err, k) {
		t.Fatalf("err = %v (kind %v), want kind %v", err, errs.KindOf(err), k)
	}
}

func (e *env) eventKinds(t testing.TB, id string) []string {
	t.Helper()
	evs, err := e.svc.events(context.Background(), `deposit = ?`, id)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Kind)
	}
	return out
}

func (e *env) state(t testing.TB, id string) State {
	t.Helper()
	d, err := e.svc.load(context.Background(), e.db.DB, id)
	if err != nil {
		t.Fatal(err)
	}
	return d.State
}
