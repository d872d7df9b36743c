package fwupd_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/internal/testenv"
	"github.com/afterlife-oss/afterlife/registry"
	"github.com/afterlife-oss/afterlife/registry/fwupd"
	"github.com/afterlife-oss/afterlife/registry/fwupd/jcat"
)

// verifies reports whether a Jcat file holds a sha256 and a signature by
// the CA's key that both match meta, as fwupd requires.
func verifies(t *testing.T, roots *x509.CertPool, jcatFile, meta []byte) bool {
	t.Helper()
	f, err := jcat.Parse(jcatFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Items) != 1 || f.Items[0].ID != "firmware.xml.zst" {
		t.Fatalf("jcat items = %+v, want one firmware.xml.zst", f.Items)
	}
	sum, sig := false, false
	for _, b := range f.Items[0].Blobs {
		if jcat.Verify(meta, b, roots) != nil {
			return false
		}
		sum = sum || b.Kind == jcat.SHA256
		sig = sig || b.Kind == jcat.PKCS7
	}
	return sum && sig
}

// fetch is one GET of a current name: the generation it says it answered
// from, and the bytes.
type fetch struct {
	gen  int64
	body []byte
}

func get(url string) (fetch, error) {
	resp, err := http.Get(url)
	if err != nil {
		return fetch{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return fetch{}, fmt.Errorf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	n, err := strconv.ParseInt(resp.Header.Get(fwupd.GenerationHeader), 10, 64)
	return fetch{gen: n, body: b}, err
}

func TestTheMetadataAndItsJcatFileArePublishedTogether(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		e := newEnv(t, d)
		roots := x509.NewCertPool()
		roots.AddCert(e.signer.CA)
		e.release(t, "rel_1", "demo-cam", "1.0.0", registry.Stable, []byte("firmware one"), nil)

		t.Run("nothing is served before the first export", func(t *testing.T) {
			if _, err := get(e.url + fwupd.MetadataPath); err == nil {
				t.Fatal("metadata served before anything was published")
			}
		})
		g1, err := e.remote.Export(ctx)
		if err != nil || g1 == nil || g1.N != 1 || g1.Releases != 1 {
			t.Fatalf("first export = %+v, %v; want generation 1 with 1 release", g1, err)
		}
		t.Run("an export with nothing new publishes nothing", func(t *testing.T) {
			e.clock.Add(2 * interval)
			if g, err := e.remote.Export(ctx); err != nil || g != nil {
				t.Fatalf("export = %+v, %v; want nothing", g, err)
			}
		})
		t.Run("a change waits until the newest generation is the minimum interval old", func(t *testing.T) {
			e.release(t, "rel_2", "demo-cam", "1.0.2", registry.Stable, []byte("firmware two"), nil)
			if g, err := e.remote.Export(ctx); err != nil || g == nil || g.N != 2 {
				t.Fatalf("export = %+v, %v; want generation 2", g, err)
			}
			e.release(t, "rel_3", "demo-cam", "1.0.3", registry.Stable, []byte("firmware three"), nil)
			e.clock.Add(interval / 2)
			if g, err := e.remote.Export(ctx); err != nil || g != nil {
				t.Fatalf("export = %+v, %v; want it to wait", g, err)
			}
			e.clock.Add(interval / 2)
			if g, err := e.remote.Export(ctx); err != nil || g == nil || g.N != 3 {
				t.Fatalf("export = %+v, %v; want generation 3", g, err)
			}
		})

		// Readers fetch the Jcat file then the metadata, as fwupd does,
		// while releases arrive and generations switch.
		stop := make(chan struct{})
		type pair struct{ j, m fetch }
		var mu sync.Mutex
		var pairs []pair
		var wg sync.WaitGroup
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					j, err := get(e.url + fwupd.JcatPath)
					if err != nil {
						t.Error(err)
						return
					}
					m, err := get(e.url + fwupd.MetadataPath)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					pairs = append(pairs, pair{j, m})
					mu.Unlock()
				}
			}()
		}
		for i := 4; i <= 9; i++ {
			e.release(t, fmt.Sprintf("rel_%d", i), "demo-cam", fmt.Sprintf("1.0.%d", i), registry.Stable, []byte(fmt.Sprintf("firmware %d", i)), nil)
			e.clock.Add(interval)
			if g, err := e.remote.Export(ctx); err != nil || g == nil {
				t.Fatalf("export = %+v, %v", g, err)
			}
			// Let the readers see this generation before the next.
			seen := func() int {
				mu.Lock()
				defer mu.Unlock()
				return len(pairs)
			}
			n := seen()
			testenv.Eventually(t, 30*time.Second, func() error {
				if seen() < n+3 {
					return fmt.Errorf("readers fetched %d pairs since generation switched", seen()-n)
				}
				return nil
			})
		}
		close(stop)
		wg.Wait()

		t.Run("every answer of a current name is the generation it names", func(t *testing.T) {
			for _, p := range pairs {
				for _, f := range []fetch{p.j, p.m} {
					g, err := e.remote.Get(ctx, f.gen)
					if err != nil {
						t.Fatal(err)
					}
					if d := blob.FromBytes(f.body); d != g.Metadata && d != g.Jcat {
						t.Fatalf("an answer naming generation %d holds neither of its files", f.gen)
					}
				}
			}
		})
		t.Run("a Jcat file and metadata of one generation always verify", func(t *testing.T) {
			same := 0
			for _, p := range pairs {
				if p.j.gen != p.m.gen {
					continue // the two downloads straddled a switch, and say so
				}
				same++
				if !verifies(t, roots, p.j.body, p.m.body) {
					t.Fatalf("generation %d's Jcat file does not verify its metadata", p.j.gen)
				}
			}
			if same < len(pairs)/2 || same < 10 {
				t.Fatalf("only %d of %d pairs came from one generation", same, len(pairs))
			}
		})
		t.Run("the metadata lists every release, newest first", func(t *testing.T) {
			xml := string(unzstd(t, e.get(t, fwupd.MetadataPath)))
			if !strings.Contains(xml, `version="1.0.9"`) || strings.Index(xml, `version="1.0.9"`) > strings.Index(xml, `version="1.0.0"`) {
				t.Fatalf("metadata does not list 1.0.9 before 1.0.0:\n%s", xml)
			}
		})
		t.Run("every generation stays served under its own immutable name", func(t *testing.T) {
			cur, err := e.remote.Current(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for n := int64(1); n <= cur.N; n++ {
				p := fmt.Sprintf("%sgenerations/%d/", fwupd.Prefix, n)
				if !verifies(t, roots, e.get(t, p+"firmware.xml.zst.jcat"), e.get(t, p+"firmware.xml.zst")) {
					t.Fatalf("generation %d does not verify", n)
				}
			}
		})
	})
}
