package escrow

import (
	"bytes"
	"context"
	"io"
	"os"
	"testing"

	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

// damage flips bytes of a blob on disk, as a failing drive would.
func damage(t *testing.T, e *env, d blob.Digest) {
	t.Helper()
	p := e.disk.Path(d)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

type counter struct{ n float64 }

func (c *counter) Add(v float64) { c.n += v }

func TestTheScrubFindsACorruptBlobOnDiskAndReadsRefuseIt(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		checked, corrupt := &counter{}, &counter{}
		svc := e.service(t, e.db, Options{Metrics: Metrics{BlobsChecked: checked, BlobsCorrupt: corrupt}})
		e.svc = svc
		pub, _ := e.deposit(t, acme, "demo-cam", "immediate", demoFiles)
		sealed, _ := e.deposit(t, acme, "other-cam", "on=2099-01-01", map[string]string{"fw/image.bin": "sealed firmware image bytes"})

		rep, err := svc.Scrubber("r1").Run(ctx, "test")
		if err != nil || rep.Checked == 0 || rep.Corrupt+rep.Missing != 0 {
			t.Fatalf("clean scrub = %+v, %v", rep, err)
		}

		plain := blob.Digest("sha256:" + hexSum([]byte(demoFiles["src/main.c"])))
		sf, err := svc.file(ctx, sealed.ID, "fw/image.bin")
		if err != nil {
			t.Fatal(err)
		}
		if e.disk != nil {
			damage(t, e, plain)
			damage(t, e, sf.Cipher)
		} else {
			// MinIO objects cannot be damaged in place from outside the
			// store; a lost object is the failure to detect there.
			if err := e.blobs.Delete(ctx, plain); err != nil {
				t.Fatal(err)
			}
			if err := e.blobs.Delete(ctx, sf.Cipher); err != nil {
				t.Fatal(err)
			}
		}

		if e.disk != nil {
			t.Run("a read before the scrub fails and never returns the full content", func(t *testing.T) {
				f, err := svc.Open(ctx, nobody, pub.ID, "src/main.c")
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(f)
				f.Close()
				wantKind(t, err, errs.Conflict)
				if len(got) >= len(demoFiles["src/main.c"]) {
					t.Fatalf("read returned %d bytes of corrupt content", len(got))
				}
			})
		}

		rep, err = svc.Scrubber("r1").Run(ctx, "test")
		if err != nil {
			t.Fatal(err)
		}
		if bad := rep.Corrupt + rep.Missing; bad != 2 || len(rep.Problems) != 2 {
			t.Fatalf("scrub = %+v, want 2 bad blobs", rep)
		}
		if corrupt.n < 2 || checked.n < float64(rep.Checked) {
			t.Fatalf("metrics: checked %v, corrupt %v", checked.n, corrupt.n)
		}
		st, err := svc.ScrubStatus(ctx, admin)
		if err != nil || len(st.Recent) != 2 || len(st.Problems) != 2 {
			t.Fatalf("scrub status = %+v, %v", st, err)
		}
		_, err = svc.ScrubStatus(ctx, acme)
		wantKind(t, err, errs.Forbidden)

		t.Run("reads of the released file are refused", func(t *testing.T) {
			_, err := svc.Open(ctx, nobody, pub.ID, "src/main.c")
			wantKind(t, err, errs.Conflict)
			_, _, err = svc.ReleasedFile(ctx, plain)
			wantKind(t, err, errs.Conflict)
		})
		t.Run("reads of the sealed file are refused to its vendor", func(t *testing.T) {
			_, err := svc.Open(ctx, acme, sealed.ID, "fw/image.bin")
			wantKind(t, err, errs.Conflict)
		})
		t.Run("other files stay readable", func(t *testing.T) {
			got, err := readAll(t, svc, nobody, pub.ID, "docs/board.pdf")
			if err != nil || got != demoFiles["docs/board.pdf"] {
				t.Fatalf("read = %q, %v", got, err)
			}
		})
		t.Run("a restored blob is served again after the next scrub", func(t *testing.T) {
			if e.disk != nil {
				os.Remove(e.disk.Path(plain))
			}
			if _, err := e.blobs.Put(ctx, bytes.NewReader([]byte(demoFiles["src/main.c"])), plain); err != nil {
				t.Fatal(err)
			}
			rep, err := svc.Scrubber("r1").Run(ctx, "test")
			if err != nil || rep.Corrupt+rep.Missing != 1 {
				t.Fatalf("scrub after restore = %+v, %v", rep, err)
			}
			got, err := readAll(t, svc, nobody, pub.ID, "src/main.c")
			if err != nil || got != demoFiles["src/main.c"] {
				t.Fatalf("read = %q, %v", got, err)
			}
		})
	})
}

// artifactList stands for the registry's list of release artifacts; the
// blobs themselves are real, in the same store as the escrow's.
type artifactList []string

func (l artifactList) ArtifactDigests(context.Context) ([]string, error) { return l, nil }

func TestTheScrubChecksReleaseArtifactsToo(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		var list artifactList
		contents := map[blob.Digest][]byte{}
		for _, c := range []string{"firmware image 1.0.0", "firmware image 1.1.0", "sbom of 1.1.0"} {
			info, err := e.blobs.Put(ctx, bytes.NewReader([]byte(c)), "")
			if err != nil {
				t.Fatal(err)
			}
			list = append(list, string(info.Digest))
			contents[info.Digest] = []byte(c)
		}
		svc := e.service(t, e.db, Options{Artifacts: list})
		rep, err := svc.Scrubber("r1").Run(ctx, "test")
		if err != nil || rep.Checked != 3 || rep.Corrupt+rep.Missing != 0 {
			t.Fatalf("clean scrub = %+v, %v; want 3 artifacts checked", rep, err)
		}

		bad, lost := blob.Digest(list[0]), blob.Digest(list[1])
		if e.disk != nil {
			damage(t, e, bad)
		} else if err := e.blobs.Delete(ctx, bad); err != nil {
			t.Fatal(err)
		}
		if err := e.blobs.Delete(ctx, lost); err != nil {
			t.Fatal(err)
		}
		rep, err = svc.Scrubber("r1").Run(ctx, "test")
		if err != nil || rep.Checked != 3 || rep.Corrupt+rep.Missing != 2 || rep.Missing < 1 {
			t.Fatalf("scrub after damage = %+v, %v; want the damaged and the lost artifact", rep, err)
		}
		st, err := svc.ScrubStatus(ctx, admin)
		if err != nil {
			t.Fatal(err)
		}
		found := map[string]string{}
		for _, p := range st.Problems {
			if p.Role == "artifact" {
				found[p.Digest] = p.Status
			}
		}
		if found[string(lost)] != blobMissing || found[string(bad)] == "" || len(found) != 2 {
			t.Fatalf("problems = %+v, want the two artifacts reported", st.Problems)
		}

		for _, d := range []blob.Digest{bad, lost} {
			if e.disk != nil {
				os.Remove(e.disk.Path(d))
			}
			if _, err := e.blobs.Put(ctx, bytes.NewReader(contents[d]), d); err != nil {
				t.Fatal(err)
			}
		}
		rep, err = svc.Scrubber("r1").Run(ctx, "test")
		if err != nil || rep.Corrupt+rep.Missing != 0 || len(rep.Problems) != 0 {
			t.Fatalf("scrub after restore = %+v, %v; want no problems", rep, err)
		}
	})
}
