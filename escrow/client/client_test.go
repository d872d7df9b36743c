package client_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/afterlife-oss/afterlife/escrow"
	"github.com/afterlife-oss/afterlife/escrow/client"
	"github.com/afterlife-oss/afterlife/escrow/manifest"
	"github.com/afterlife-oss/afterlife/escrow/receipt"
	"github.com/afterlife-oss/afterlife/internal/blob/fsstore"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpapi"
	"github.com/afterlife-oss/afterlife/internal/httpclient"
	"github.com/afterlife-oss/afterlife/internal/principal"
	"github.com/afterlife-oss/afterlife/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type products struct{}

func (products) Vendor(_ context.Context, id string) (string, error) {
	if id == "demo-cam" {
		return "acme", nil
	}
	return "", errs.E(errs.NotFound, "product %s not found", id)
}

type tokens map[string]principal.Principal

func (tk tokens) Authenticate(_ context.Context, s string) (principal.Principal, error) {
	if p, ok := tk[s]; ok {
		return p, nil
	}
	return principal.Principal{}, errs.E(errs.Unauthenticated, "bad token")
}

// server is a real escrow behind httptest, with a hook that can break
// connections.
type server struct {
	*httptest.Server
	svc   *escrow.Service
	mu    sync.Mutex
	puts  map[string]int // completed PUTs per file path
	drop  func(r *http.Request) bool
	put   func(r *http.Request) // may replace the body before the server reads it
	after func(path string)     // called when a PUT succeeded, before the answer goes out
}

func newServer(t *testing.T) *server {
	t.Helper()
	store, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	id, _ := age.GenerateX25519Identity()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	svc, err := escrow.New(context.Background(), escrow.Options{DB: dbtest.SQLite(t), Blobs: store, Products: products{}, Identity: id, ReceiptKey: key})
	if err != nil {
		t.Fatal(err)
	}
	api := httpapi.New(httpapi.Options{Auth: tokens{
		"acme":  {Name: "acme-ci", Role: principal.Vendor, Org: "acme"},
		"alice": {Name: "alice", Role: principal.Trustee},
		"admin": {Name: "root", Role: principal.Admin},
	}})
	svc.Register(api.V1(), api.Root())
	s := &server{svc: svc, puts: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			s.mu.Lock()
			drop := s.drop != nil && s.drop(r)
			put := s.put
			s.mu.Unlock()
			if put != nil {
				put(r)
			}
			if drop {
				// Take some of the body, then cut the connection, as a
				// flaky network would.
				io.CopyN(io.Discard, r.Body, 100)
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					conn.Close()
				}
				return
			}
			path := r.URL.Path[strings.Index(r.URL.Path, "/files/")+7:]
			rec := &statusRecorder{ResponseWriter: w, onOK: func() {
				s.mu.Lock()
				s.puts[path]++
				after := s.after
				s.mu.Unlock()
				if after != nil {
					after(path)
				}
			}}
			api.Engine().ServeHTTP(rec, r)
			return
		}
		api.Engine().ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// statusRecorder calls onOK before a 200 answer is written.
type statusRecorder struct {
	http.ResponseWriter
	onOK  func()
	wrote bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wrote && code == http.StatusOK {
		r.onOK()
	}
	r.wrote = true
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if !r.wrote {
		r.WriteHeader(http.StatusOK)
	}
	return r.ResponseWriter.Write(b)
}

func (s *server) client(token string) *client.Client {
	return client.New(client.Options{Server: s.URL, Token: token, Progress: io.Discard,
		HTTP: httpclient.New(httpclient.Options{WaitMin: time.Millisecond, WaitMax: 5 * time.Millisecond})})
}

// tree writes a sunset package with a symlink.
func tree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"docs/board.pdf":    "%PDF schematics",
		"src/main.c":        strings.Repeat("int x;\n", 5000),
		"src/include/cam.h": "#define CAM 1\n",
		"keys/unlock.pem":   "-----BEGIN-----\n",
		"toolchain/gcc.txt": "gcc 12.2",
		"blob.bin":          "\x00\x01",
	}
	for p, c := range files {
		full := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("main.c", filepath.Join(dir, "src/latest.c")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestScanWalksSortedInfersKindsAndKeepsLinks(t *testing.T) {
	dir := tree(t)
	kinds := filepath.Join(t.TempDir(), "kinds.yaml")
	os.WriteFile(kinds, []byte("blob.bin: spec\n"), 0o644)
	over, err := client.LoadKinds(kinds)
	if err != nil {
		t.Fatal(err)
	}
	files, err := client.Scan([]string{dir}, over)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		s := f.Path + "=" + string(f.Kind)
		if f.IsLink() {
			s += "->" + f.Link
		}
		got = append(got, s)
	}
	want := "blob.bin=spec docs/board.pdf=spec keys/unlock.pem=keys src/include/cam.h=source src/latest.c=source->main.c src/main.c=source toolchain/gcc.txt=toolchain"
	if strings.Join(got, " ") != want {
		t.Fatalf("scan =\n%s\nwant\n%s", strings.Join(got, " "), want)
	}

	t.Run("a link escaping the tree is refused", func(t *testing.T) {
		os.Symlink("../../../etc/passwd", filepath.Join(dir, "src/evil"))
		defer os.Remove(filepath.Join(dir, "src/evil"))
		_, err := client.Scan([]string{dir}, nil)
		if !errs.Is(err, errs.Invalid) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a kinds file naming a missing path is refused", func(t *testing.T) {
		_, err := client.Scan([]string{dir}, map[string]manifest.Kind{"nope": manifest.Spec})
		if !errs.Is(err, errs.Invalid) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestADepositUploadsResumesAndCommits(t *testing.T) {
	s := newServer(t)
	dir := tree(t)
	state := filepath.Join(t.TempDir(), "state.json")
	rcpt := filepath.Join(t.TempDir(), "receipt.json")
	ctx := context.Background()

	// The first run: the connection drops once while sending src/main.c
	// (the client retries it), then the process "crashes" after
	// keys/unlock.pem.
	dropped := false
	s.drop = func(r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/src/main.c") && !dropped {
			dropped = true
			return true
		}
		return false
	}
	crashCtx, crash := context.WithCancel(ctx)
	defer crash()
	s.after = func(path string) {
		if path == "keys/unlock.pem" {
			crash() // before the client hears back
		}
	}
	opts := client.DepositOptions{Product: "demo-cam", Policy: "dead-man=30d,7d", Paths: []string{dir}, StateFile: state, ReceiptFile: rcpt}
	_, err := s.client("acme").Deposit(crashCtx, opts)
	if err == nil {
		t.Fatal("the interrupted run succeeded")
	}
	if _, err := os.Stat(state); err != nil {
		t.Fatalf("no state file after a crash: %v", err)
	}

	// The re-run continues the same deposit and sends only what the server
	// did not have when it started.
	var st struct {
		Deposit string `json:"deposit"`
	}
	b, _ := os.ReadFile(state)
	json.Unmarshal(b, &st)
	before, err := s.svc.Upload(ctx, principal.Principal{Role: principal.Admin}, st.Deposit)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.puts = map[string]int{}
	s.mu.Unlock()
	res, err := s.client("acme").Deposit(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Resumed || res.Deposit != st.Deposit || res.Skipped == 0 {
		t.Fatalf("result = %+v, want deposit %s resumed", res, st.Deposit)
	}
	s.mu.Lock()
	for _, f := range before.Files {
		if f.Done && s.puts[f.Path] != 0 {
			t.Errorf("%s was done before the re-run but sent again", f.Path)
		}
		if !f.Done && s.puts[f.Path] == 0 {
			t.Errorf("%s was missing but not sent", f.Path)
		}
	}
	if !dropped {
		t.Error("the connection was never dropped")
	}
	s.mu.Unlock()
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Fatalf("state file left behind: %v", err)
	}

	t.Run("the receipt verifies offline with the exported key", func(t *testing.T) {
		keyFile := filepath.Join(t.TempDir(), "receipt.pub")
		os.WriteFile(keyFile, []byte(receipt.FormatPublicKey(s.svc.ReceiptPublicKey())), 0o644)
		r, err := client.VerifyReceiptFile(rcpt, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		if r.Deposit != res.Deposit || r.Files != 7 {
			t.Fatalf("receipt = %+v", r)
		}
		b, _ := os.ReadFile(rcpt)
		os.WriteFile(rcpt, []byte(strings.Replace(string(b), `"signature": "`, `"signature": "AA`, 1)), 0o644)
		if _, err := client.VerifyReceiptFile(rcpt, keyFile); err == nil {
			t.Fatal("a damaged receipt verified")
		}
	})
	t.Run("the vendor reads a sealed file back decrypted", func(t *testing.T) {
		f, err := s.svc.Open(ctx, principal.Principal{Role: principal.Vendor, Org: "acme"}, res.Deposit, "src/main.c")
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil || string(b) != strings.Repeat("int x;\n", 5000) {
			t.Fatalf("read %d bytes, %v", len(b), err)
		}
	})
	t.Run("a re-run after success finds the committed deposit and sends nothing; --again or another policy deposits anew", func(t *testing.T) {
		s.mu.Lock()
		s.puts = map[string]int{}
		s.mu.Unlock()
		again, err := s.client("acme").Deposit(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		if again.AlreadyCommitted == nil || again.Deposit != res.Deposit || again.AlreadyCommitted.State != "sealed" || again.Sent != 0 {
			t.Fatalf("the re-run = %+v, want deposit %s reported as already committed", again, res.Deposit)
		}
		ds, err := s.svc.List(ctx, principal.Principal{Role: principal.Admin}, escrow.ListFilter{Product: "demo-cam"})
		if err != nil || len(ds) != 1 {
			t.Fatalf("after the re-run the escrow holds %d deposits (%v), want 1", len(ds), err)
		}
		other := opts
		other.Policy = "dead-man=60d,7d"
		other.ReceiptFile = filepath.Join(t.TempDir(), "r2.json")
		if r, err := s.client("acme").Deposit(ctx, other); err != nil || r.AlreadyCommitted != nil || r.Deposit == res.Deposit {
			t.Fatalf("another policy: %+v, %v; want a new deposit", r, err)
		}
		forced := opts
		forced.Again = true
		forced.ReceiptFile = filepath.Join(t.TempDir(), "r3.json")
		if r, err := s.client("acme").Deposit(ctx, forced); err != nil || r.AlreadyCommitted != nil || r.Deposit == res.Deposit {
			t.Fatalf("--again: %+v, %v; want a new deposit", r, err)
		}
	})
	t.Run("the vendor checks in", func(t *testing.T) {
		at, err := s.client("acme").Checkin(ctx, "acme")
		if err != nil || at.IsZero() {
			t.Fatalf("checkin = %v, %v", at, err)
		}
		_, err = s.client("acme").Checkin(ctx, "globex")
		if !errs.Is(err, errs.Forbidden) {
			t.Fatalf("checkin for another org: %v", err)
		}
	})
}

func TestATrusteeApprovesWithAKeyFile(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	keyFile := filepath.Join(t.TempDir(), "alice.key")
	pub, err := client.GenerateKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.GenerateKey(keyFile); !errs.Is(err, errs.Conflict) {
		t.Fatalf("a second GenerateKey overwrote: %v", err)
	}
	if _, err := s.svc.AddTrustee(ctx, principal.Principal{Role: principal.Admin, Name: "root"}, "alice", pub); err != nil {
		t.Fatal(err)
	}
	res, err := s.client("acme").Deposit(ctx, client.DepositOptions{Product: "demo-cam", Policy: "quorum=1/2:alice,bob",
		Paths: []string{tree(t)}, StateFile: filepath.Join(t.TempDir(), "s.json"), ReceiptFile: filepath.Join(t.TempDir(), "r.json")})
	if err != nil {
		t.Fatal(err)
	}
	key, err := client.LoadKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := s.client("alice").GetDeposit(ctx, res.Deposit); err != nil || d.Manifest != nil || d.ManifestDigest == "" {
		t.Fatalf("the trustee reads %+v, %v; want the approval state without the manifest", d, err)
	}
	r, err := s.client("alice").Approve(ctx, res.Deposit, "alice", key)
	if err != nil || !r.Released {
		t.Fatalf("approve = %+v, %v", r, err)
	}
	d, err := s.client("").GetDeposit(ctx, res.Deposit)
	if err != nil || d.State != "released" || d.Fired != "quorum" {
		t.Fatalf("deposit after approval = %+v, %v", d, err)
	}
}

func TestADepositWithoutAPolicyIsRefusedBeforeAnythingIsSent(t *testing.T) {
	var requests sync.Map
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Store(r.URL.Path, true)
		http.Error(w, "unexpected", http.StatusTeapot)
	}))
	defer srv.Close()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "signing.key"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := client.New(client.Options{Server: srv.URL, Token: "t", Progress: io.Discard})
	for _, pol := range []string{"", "  ", "someday"} {
		t.Run("policy "+strconv.Quote(pol)+" is refused", func(t *testing.T) {
			_, err := c.Deposit(context.Background(), client.DepositOptions{Product: "demo-cam", Policy: pol, Paths: []string{dir},
				StateFile: filepath.Join(t.TempDir(), "state"), ReceiptFile: filepath.Join(t.TempDir(), "r.json")})
			if !errs.Is(err, errs.Invalid) || !strings.Contains(err.Error(), "immediate") || !strings.Contains(err.Error(), "quorum") {
				t.Fatalf("err = %v, want an Invalid error naming the choices", err)
			}
		})
	}
	requests.Range(func(k, _ any) bool {
		t.Errorf("the client sent %s before refusing", k)
		return true
	})
}

func TestScanRefusesTreesThatMislead(t *testing.T) {
	tests := []struct {
		name  string
		files []string
		links map[string]string
	}{
		{"a link escaping through another link", []string{"c/f"}, map[string]string{"a/b/m": "../../c", "a/b/l": "m/../../../x"}},
		{"names equal once case-folded", []string{"README", "readme"}, nil},
		{"names equal once NFC-normalised", []string{"caf\u00e9", "cafe\u0301"}, nil},
		{"a name with a bidi override", []string{"evil\u202etxt.exe"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused before anything is sent", func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tt.files {
				p := filepath.Join(dir, f)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for l, target := range tt.links {
				p := filepath.Join(dir, l)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(target, p); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := client.Scan([]string{dir}, nil); !errs.Is(err, errs.Invalid) {
				t.Fatalf("Scan = %v, want invalid", err)
			}
		})
	}
}
