package escrow

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/escrow/manifest"
	"github.com/afterlife-oss/afterlife/escrow/receipt"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/principal"
	"github.com/afterlife-oss/afterlife/internal/testenv"
)

func readAll(t testing.TB, s *Service, p principal.Principal, id, path string) (string, error) {
	t.Helper()
	f, err := s.Open(context.Background(), p, id, path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	return string(b), err
}

func TestADepositIsSealedEncryptedAndReceipted(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		d, r := e.deposit(t, acme, "demo-cam", "on=2030-01-01", demoFiles)

		t.Run("the receipt verifies offline with the receipt key", func(t *testing.T) {
			raw, _ := json.Marshal(r)
			got, err := receipt.Verify(e.svc.ReceiptPublicKey(), raw)
			if err != nil {
				t.Fatal(err)
			}
			if got.Deposit != d.ID || got.ManifestDigest != manifest.Digest(entries(demoFiles)) || got.Files != 5 || got.TotalSize != d.TotalSize || !got.CommittedAt.Equal(t0) {
				t.Fatalf("receipt = %+v", got)
			}
		})
		t.Run("committing again returns the same receipt", func(t *testing.T) {
			again, err := e.svc.Commit(ctx, acme, d.ID)
			if err != nil || again != r {
				t.Fatalf("second commit = %+v, %v", again, err)
			}
		})
		t.Run("no plaintext is in the blob store while sealed", func(t *testing.T) {
			for path, content := range demoFiles {
				if strings.HasPrefix(content, "->") {
					continue
				}
				if _, err := e.blobs.Stat(ctx, blob.Digest("sha256:"+hexSum([]byte(content)))); !errs.Is(err, errs.NotFound) {
					t.Fatalf("%s: plaintext blob present (err %v)", path, err)
				}
			}
			err := e.blobs.Walk(ctx, func(i blob.Info) error {
				rc, err := e.blobs.Get(ctx, i.Digest, 0, -1)
				if err != nil {
					return err
				}
				defer rc.Close()
				b, _ := io.ReadAll(rc)
				if !bytes.HasPrefix(b, []byte("age-encryption.org/v1")) || bytes.Contains(b, []byte("secret")) {
					t.Errorf("blob %s is not age ciphertext", i.Digest)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
		t.Run("the vendor reads its sealed files decrypted", func(t *testing.T) {
			got, err := readAll(t, e.svc, acme, d.ID, "keys/unlock.pem")
			if err != nil || got != demoFiles["keys/unlock.pem"] {
				t.Fatalf("read = %q, %v", got, err)
			}
			got, err = readAll(t, e.svc, admin, d.ID, "empty.bin")
			if err != nil || got != "" {
				t.Fatalf("admin read of an empty file = %q, %v", got, err)
			}
		})
		t.Run("another vendor, a builder and anonymous callers cannot see it", func(t *testing.T) {
			for _, p := range []principal.Principal{globex, nobody, builder} {
				_, err := e.svc.Get(ctx, p, d.ID)
				wantKind(t, err, errs.NotFound)
				_, err = readAll(t, e.svc, p, d.ID, "keys/unlock.pem")
				wantKind(t, err, errs.NotFound)
				ds, err := e.svc.List(ctx, p, ListFilter{})
				if err != nil || len(ds) != 0 {
					t.Fatalf("%s lists %v, %v", p.Actor(), ds, err)
				}
			}
		})
		t.Run("nobody can delete or change a sealed deposit", func(t *testing.T) {
			for _, p := range []principal.Principal{acme, admin} {
				wantKind(t, e.svc.Abort(ctx, p, d.ID), errs.Conflict)
				_, err := e.svc.PutFile(ctx, p, d.ID, "src/main.c", strings.NewReader("x"))
				wantKind(t, err, errs.Conflict)
			}
			if got := e.state(t, d.ID); got != Sealed {
				t.Fatalf("state = %s", got)
			}
		})
		t.Run("the event log records creation and sealing", func(t *testing.T) {
			if got := strings.Join(e.eventKinds(t, d.ID), ","); got != "created,sealed" {
				t.Fatalf("events = %s", got)
			}
		})
	})
}

func TestBadUploadsAreRefusedAndLeaveNothing(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		small := e.service(t, e.db, Options{Limits: manifest.Limits{MaxFileSize: 64, MaxDepositSize: 100}})
		files := map[string]string{"a.txt": "hello", "b.txt": "world!"}
		d, err := small.Create(ctx, acme, CreateRequest{Product: "demo-cam", Policy: "immediate", Manifest: entries(files)})
		if err != nil {
			t.Fatal(err)
		}
		before := e.blobCount(t)
		tests := []struct {
			name string
			p    principal.Principal
			path string
			body string
			kind errs.Kind
		}{
			{"content that hashes differently is refused", acme, "a.txt", "HELLO", errs.Invalid},
			{"a body longer than declared is refused", acme, "a.txt", "hello, world", errs.TooLarge},
			{"a path outside the manifest is refused", acme, "c.txt", "hello", errs.NotFound},
			{"a parent path is refused", acme, "../a.txt", "hello", errs.Invalid},
			{"a NUL in the path is refused", acme, "a\x00.txt", "hello", errs.Invalid},
			{"another vendor cannot upload", globex, "a.txt", "hello", errs.NotFound},
			{"a builder cannot upload", builder, "a.txt", "hello", errs.NotFound},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := small.PutFile(ctx, tt.p, d.ID, tt.path, strings.NewReader(tt.body))
				wantKind(t, err, tt.kind)
				if n := e.blobCount(t); n != before {
					t.Fatalf("blob store holds %d blobs, was %d", n, before)
				}
			})
		}
		t.Run("committing with files missing is refused", func(t *testing.T) {
			_, err := small.Commit(ctx, acme, d.ID)
			wantKind(t, err, errs.Conflict)
		})
		t.Run("an upload resumes: done files are reported and not re-read", func(t *testing.T) {
			if _, err := small.PutFile(ctx, acme, d.ID, "a.txt", strings.NewReader("hello")); err != nil {
				t.Fatal(err)
			}
			st, err := small.Upload(ctx, acme, d.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(st.Files) != 2 || !st.Files[0].Done || st.Files[1].Done {
				t.Fatalf("upload status = %+v", st)
			}
			again, err := small.PutFile(ctx, acme, d.ID, "a.txt", failingReader{})
			if err != nil || !again.Done {
				t.Fatalf("re-upload of a done file = %+v, %v", again, err)
			}
		})
		t.Run("an uploading deposit is invisible outside its org", func(t *testing.T) {
			_, err := small.Get(ctx, globex, d.ID)
			wantKind(t, err, errs.NotFound)
			ups, err := small.List(ctx, acme, ListFilter{State: Uploading})
			if err != nil || len(ups) != 1 {
				t.Fatalf("uploads = %v, %v", ups, err)
			}
			ds, _ := small.List(ctx, acme, ListFilter{})
			if len(ds) != 0 {
				t.Fatalf("plain listing shows uploads: %v", ds)
			}
		})
		t.Run("aborting removes the upload and its blobs", func(t *testing.T) {
			if err := small.Abort(ctx, acme, d.ID); err != nil {
				t.Fatal(err)
			}
			if n := e.blobCount(t); n != before {
				t.Fatalf("blob store holds %d blobs after abort, was %d", n, before)
			}
			_, err := small.Get(ctx, acme, d.ID)
			wantKind(t, err, errs.NotFound)
		})

		create := []struct {
			name string
			p    principal.Principal
			req  CreateRequest
			kind errs.Kind
		}{
			{"a vendor cannot deposit for another vendor's product", globex, CreateRequest{Product: "demo-cam", Policy: "immediate", Manifest: entries(files)}, errs.Forbidden},
			{"an unknown product is refused", acme, CreateRequest{Product: "nope", Policy: "immediate", Manifest: entries(files)}, errs.NotFound},
			{"a bad policy is refused", acme, CreateRequest{Product: "demo-cam", Policy: "whenever", Manifest: entries(files)}, errs.Invalid},
			{"an absolute path is refused", acme, CreateRequest{Product: "demo-cam", Policy: "immediate", Manifest: entries(map[string]string{"/etc/x": "a"})}, errs.Invalid},
			{"a file over the per-file limit is refused", acme, CreateRequest{Product: "demo-cam", Policy: "immediate", Manifest: entries(map[string]string{"big": strings.Repeat("x", 65)})}, errs.TooLarge},
			{"files over the per-deposit limit are refused", acme, CreateRequest{Product: "demo-cam", Policy: "immediate", Manifest: entries(map[string]string{"a": strings.Repeat("x", 60), "b": strings.Repeat("x", 60)})}, errs.TooLarge},
			{"a link escaping the tree is refused", acme, CreateRequest{Product: "demo-cam", Policy: "immediate", Manifest: entries(map[string]string{"a/l": "->../../etc/passwd"})}, errs.Invalid},
			{"a maintainer cannot deposit", principal.Principal{Name: "m", Role: principal.Maintainer}, CreateRequest{Product: "demo-cam", Policy: "immediate", Manifest: entries(files)}, errs.Forbidden},
		}
		for _, tt := range create {
			t.Run(tt.name, func(t *testing.T) {
				_, err := small.Create(ctx, tt.p, tt.req)
				wantKind(t, err, tt.kind)
			})
		}
	})
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func TestAbandonedUploadsAreCollectedAfterTheTTL(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		before := e.blobCount(t)
		files := map[string]string{"a.txt": "hello", "b.txt": "world"}
		d, err := e.svc.Create(ctx, acme, CreateRequest{Product: "demo-cam", Policy: "immediate", Manifest: entries(files)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.PutFile(ctx, acme, d.ID, "a.txt", strings.NewReader("hello")); err != nil {
			t.Fatal(err)
		}
		sc := e.svc.Scheduler("r1")
		res, err := sc.TickResult(ctx, t0.Add(e.svc.uploadTTL-1))
		if err != nil || len(res.Abandoned) != 0 {
			t.Fatalf("tick before the TTL = %+v, %v", res, err)
		}
		res, err = sc.TickResult(ctx, t0.Add(e.svc.uploadTTL+time.Second))
		if err != nil || len(res.Abandoned) != 1 {
			t.Fatalf("tick after the TTL = %+v, %v", res, err)
		}
		if _, err := e.svc.Get(ctx, admin, d.ID); !errs.Is(err, errs.NotFound) {
			t.Fatalf("abandoned deposit still there: %v", err)
		}
		if n := e.blobCount(t); n != before {
			t.Fatalf("blob store holds %d blobs, was %d", n, before)
		}
	})
}

func TestSealedCiphertextIsLockedOnAnObjectLockBucket(t *testing.T) {
	e := newEnv(t, testenv.Postgres(t), minioStore(t, true))
	e.clock.Set(time.Now()) // object lock dates must lie in the store's future
	e.svc = e.service(t, e.db, Options{Retention: time.Hour})
	d, _ := e.deposit(t, acme, "demo-cam", "on=2099-01-01", map[string]string{"fw.bin": "firmware"})
	f, err := e.svc.file(context.Background(), d.ID, "fw.bin")
	if err != nil {
		t.Fatal(err)
	}
	wantKind(t, e.blobs.Delete(context.Background(), f.Cipher), errs.Forbidden)
	got, err := readAll(t, e.svc, acme, d.ID, "fw.bin")
	if err != nil || got != "firmware" {
		t.Fatalf("read after a refused delete = %q, %v", got, err)
	}
}

func TestADepositWhoseProductWasRetiredWhileUploadingIsNotSealed(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.products.mu.Lock()
		e.products.owners["short-lived"] = "acme"
		e.products.mu.Unlock()
		files := map[string]string{"a.txt": "hello"}
		d, err := e.svc.Create(ctx, acme, CreateRequest{Product: "short-lived", Policy: "immediate", Manifest: entries(files)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.PutFile(ctx, acme, d.ID, "a.txt", strings.NewReader("hello")); err != nil {
			t.Fatal(err)
		}
		e.products.mu.Lock()
		delete(e.products.owners, "short-lived") // the catalog retired it
		e.products.mu.Unlock()
		_, err = e.svc.Commit(ctx, acme, d.ID)
		wantKind(t, err, errs.Conflict)
		if got, err := e.svc.Get(ctx, acme, d.ID); err != nil || got.State != Uploading {
			t.Fatalf("after the refused commit: %+v, %v", got, err)
		}
	})
}
