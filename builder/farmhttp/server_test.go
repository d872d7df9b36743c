package farmhttp_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/farmclient"
	"github.com/afterlife-oss/afterlife/builder/keys"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpclient"
)

func TestRoutesEnforceRolesAndCheckUploads(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := startFarm(t, d, 2, time.Minute)
		ctx := context.Background()
		secret, _ := f.builderToken("b", "op")
		bc := farmclient.New(f.url, secret, farmclient.Options{HTTP: httpclient.Options{RetryMax: 1}})
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		reg := builder.Registration{Name: "b", PublicKey: keys.PublicKeyString(pub), Arch: "amd64",
			Toolchains: []builder.ToolchainInfo{{Name: "busybox", Version: "1.36.1"}}}

		cases := []struct {
			name string
			call func() error
			want errs.Kind
		}{
			{"a maintainer may not register a builder", func() error { _, err := f.maint.Register(ctx, reg); return err }, errs.Forbidden},
			{"an anonymous caller may not ask for work", func() error {
				_, err := farmclient.New(f.url, "", farmclient.Options{}).Next(ctx, time.Millisecond)
				return err
			}, errs.Unauthenticated},
			{"a builder token must register before asking for work", func() error { _, err := bc.Next(ctx, time.Millisecond); return err }, errs.NotFound},
			{"a builder registers with its key", func() error { _, err := bc.Register(ctx, reg); return err }, 0},
			{"registering again with another key is refused", func() error {
				other, _, _ := ed25519.GenerateKey(rand.Reader)
				r2 := reg
				r2.PublicKey = keys.PublicKeyString(other)
				_, err := bc.Register(ctx, r2)
				return err
			}, errs.Conflict},
			{"no work means an empty answer", func() error {
				j, err := bc.Next(ctx, 50*time.Millisecond)
				if err == nil && j != nil {
					return errs.E(errs.Internal, "got job %s", j.ID)
				}
				return err
			}, 0},
			{"uploading to a job one does not hold is refused", func() error {
				b := []byte("x")
				return bc.Upload(ctx, "job_none", blob.FromBytes(b), 1, bytes.NewReader(b))
			}, errs.NotFound},
			{"a maintainer may not fetch build inputs", func() error {
				_, err := f.maint.Fetch(ctx, blob.FromBytes([]byte("x")))
				return err
			}, errs.Forbidden},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				err := c.call()
				if c.want == 0 && err != nil || c.want != 0 && !errs.Is(err, c.want) {
					t.Fatalf("got %v, want kind %v", err, c.want)
				}
			})
		}

		t.Run("an upload whose content does not match its digest is refused", func(t *testing.T) {
			res, err := f.maint.Submit(ctx, builder.SubmitRequest{Repo: gitRepo(t, examples+"/unreproducible", nil)})
			if err != nil {
				t.Fatal(err)
			}
			j, err := bc.Next(ctx, 5*time.Second)
			if err != nil || j == nil || j.BuildID != res.BuildID {
				t.Fatalf("next: %+v, %v", j, err)
			}
			body := []byte("real content")
			if err := bc.Upload(ctx, j.ID, blob.FromBytes([]byte("other")), int64(len(body)), bytes.NewReader(body)); !errs.Is(err, errs.Invalid) {
				t.Fatalf("mismatched upload: %v", err)
			}
			if err := bc.Upload(ctx, j.ID, blob.FromBytes(body), int64(len(body)), bytes.NewReader(body)); err != nil {
				t.Fatalf("matching upload: %v", err)
			}
			resp, err := http.Get(f.url + "/v1/builds/" + res.BuildID)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("anonymous read of a build: %d", resp.StatusCode)
			}
			if err := bc.GiveBack(ctx, j.ID); err != nil {
				t.Fatal(err)
			}
			if err := bc.Done(ctx, j.ID, builder.Report{Failed: true, Reason: "late"}); !errs.Is(err, errs.Conflict) {
				t.Fatalf("reporting a job given back: %v", err)
			}
		})
		t.Run("a recipe with an unreleased escrow input is refused by digest", func(t *testing.T) {
			_, err := f.maint.Submit(ctx, builder.SubmitRequest{Repo: gitRepo(t, examples+"/cortex-m3/recipe", nil)})
			if !errs.Is(err, errs.Conflict) || !strings.Contains(err.Error(), "sha256:") {
				t.Fatalf("got %v", err)
			}
		})
	})
}

func TestAgentsAndTheServerShakeHandsOnTheProtocolVersion(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := startFarm(t, d, 1, time.Minute)
		ctx := context.Background()
		secret, _ := f.builderToken("b", "op")
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		reg := func(protocol int) []byte {
			b, _ := json.Marshal(builder.Registration{Protocol: protocol, Name: "b", PublicKey: keys.PublicKeyString(pub), Arch: "amd64"})
			return b
		}
		newer := strconv.Itoa(builder.ProtocolVersion + 1)
		both := "the builder speaks farm protocol " + newer + ", this coordinator speaks " + strconv.Itoa(builder.ProtocolVersion)
		call := func(method, path, header string, body []byte) (*http.Response, string) {
			t.Helper()
			req, _ := http.NewRequestWithContext(ctx, method, f.url+path, bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+secret)
			req.Header.Set("Content-Type", "application/json")
			if header != "" {
				req.Header.Set(builder.ProtocolHeader, header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			text, _ := io.ReadAll(resp.Body)
			return resp, string(text)
		}
		for _, tc := range []struct {
			name, method, path, header string
			body                       []byte
			status                     int
			says                       string
		}{
			{"a call in a newer version is refused, naming both versions", http.MethodPost, "/v1/builders", newer, reg(0), http.StatusBadRequest, both},
			{"a registration in a newer version is refused by the coordinator, naming both versions", http.MethodPost, "/v1/builders", "", reg(builder.ProtocolVersion + 1), http.StatusBadRequest, both},
			{"a version that is not a number is refused", http.MethodPost, "/v1/builders", "one", reg(0), http.StatusBadRequest, "is not a protocol version; this coordinator speaks " + strconv.Itoa(builder.ProtocolVersion)},
			{"an agent from before the handshake still registers", http.MethodPost, "/v1/builders", "", reg(0), http.StatusOK, ""},
			{"an agent of this version registers", http.MethodPost, "/v1/builders", strconv.Itoa(builder.ProtocolVersion), reg(builder.ProtocolVersion), http.StatusOK, ""},
			{"every protocol call checks the version, not only registration", http.MethodPost, "/v1/jobs/next", newer, []byte(`{"wait_ms":1}`), http.StatusBadRequest, both},
			{"fetching an input checks it too", http.MethodGet, "/v1/blobs/" + string(blob.FromBytes([]byte("x"))), newer, nil, http.StatusBadRequest, both},
		} {
			t.Run(tc.name, func(t *testing.T) {
				resp, text := call(tc.method, tc.path, tc.header, tc.body)
				if resp.StatusCode != tc.status || !strings.Contains(text, tc.says) {
					t.Fatalf("%d %s, want %d saying %q", resp.StatusCode, text, tc.status, tc.says)
				}
				if got := resp.Header.Get(builder.ProtocolHeader); got != strconv.Itoa(builder.ProtocolVersion) {
					t.Fatalf("the answer says protocol %q", got)
				}
			})
		}
		t.Run("the client sends its version on every call", func(t *testing.T) {
			bc := farmclient.New(f.url, secret, farmclient.Options{HTTP: httpclient.Options{RetryMax: 1}})
			if _, err := bc.Register(ctx, builder.Registration{Protocol: builder.ProtocolVersion, Name: "b", PublicKey: keys.PublicKeyString(pub), Arch: "amd64"}); err != nil {
				t.Fatal(err)
			}
			if _, err := bc.Next(ctx, time.Millisecond); err != nil {
				t.Fatal(err)
			}
		})
	})
}
