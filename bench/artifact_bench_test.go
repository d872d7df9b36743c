package bench

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/blob/fsstore"
	"github.com/afterlife-oss/afterlife/internal/blob/s3store"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/httpapi"
	"github.com/afterlife-oss/afterlife/internal/testenv"
	"github.com/afterlife-oss/afterlife/registry"
	"github.com/afterlife-oss/afterlife/registry/tuf"
)

// artifactRegistry is a registry on SQLite and blobs holding one release,
// rel_0 of prod-0, whose artifact fw.bin is the content of file (already in
// blobs), served with the real handler stack on a 127.0.0.1 port. It
// returns the artifact's URL.
func artifactRegistry(b *testing.B, blobs blob.Store, info blob.Info) string {
	ctx := context.Background()
	dir := b.TempDir()
	d, err := db.Open(ctx, "sqlite:"+filepath.Join(dir, "registry.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	repo, err := tuf.Open(ctx, tuf.NewMemStore(), filepath.Join(dir, "keys"), time.Now)
	if err != nil {
		b.Fatal(err)
	}
	svc, err := registry.New(ctx, registry.Options{DB: d, Blobs: blobs, TUF: repo, Catalog: benchCatalog{}, Builds: noBuilds{},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	artifacts := fmt.Sprintf(`[{"name":"fw.bin","path":"fw.bin","kind":"firmware","digest":"%s","size":%d,"target":"prod-0/1.0.0/fw.bin"}]`, info.Digest, info.Size)
	if _, err := d.ExecContext(ctx, d.Q(`INSERT INTO releases (id, product, version, channel, notes, min_version, build_id, recipe, recipe_version, install_notes,
	verdict_url, attestations_url, agreeing, total, artifacts, community, published_at, published_by)
	VALUES ('rel_0', 'prod-0', '1.0.0', 'stable', '', '', 'bld_0', 'bench', '1.0.0', '', '/builds/bld_0', '/builds/bld_0/attestations', 3, 3, ?, 1, 1700000000000, 'bench')`),
		artifacts); err != nil {
		b.Fatal(err)
	}
	if _, err := d.ExecContext(ctx, `UPDATE registry_generation SET generation = generation + 1 WHERE id = 1`); err != nil {
		b.Fatal(err)
	}
	if err := svc.Rebuild(ctx); err != nil {
		b.Fatal(err)
	}
	api := httpapi.New(httpapi.Options{Logger: slog.New(slog.DiscardHandler), Metrics: prometheus.NewRegistry()})
	svc.Register(api.V1(), api.Root())
	return serveHandler(b, api) + "/v1/releases/rel_0/artifacts/fw.bin"
}

// putFile stores file in st.
func putFile(b *testing.B, st blob.Store, file string) blob.Info {
	f, err := os.Open(file)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	info, err := st.Put(context.Background(), f, "")
	if err != nil {
		b.Fatal(err)
	}
	return info
}

// BenchmarkArtifactDownload downloads a 256 MiB firmware artifact of a
// release (GET /v1/releases/:id/artifacts/:name through the registry's
// handlers, gin and httpapi) beside the same bytes served without
// afterlife: on the disk store against nginx with sendfile, on MinIO (the
// registry redirects to a URL presigned for the store's public address)
// against a GET of a presigned URL straight from the same MinIO.
func BenchmarkArtifactDownload(b *testing.B) {
	need(b, "nginx")
	root := b.TempDir()
	file := filepath.Join(root, "fw.bin")
	writeRandomFile(b, file, downloadSize)

	b.Run("disk", func(b *testing.B) {
		blobs, err := fsstore.New(filepath.Join(b.TempDir(), "blobs"))
		if err != nil {
			b.Fatal(err)
		}
		url := artifactRegistry(b, blobs, putFile(b, blobs, file))
		ng := startNginx(b, root)
		for b.Loop() {
			al, nx := pairedMBps(b, url, ng.URL+"/fw.bin", downloadSize, 5)
			b.ReportMetric(al, "afterlife-MB/s")
			b.ReportMetric(nx, "nginx-MB/s")
			figure("artifact download 256 MiB, disk: afterlife %.0f MB/s | nginx sendfile %.0f MB/s | ratio %.2f", al, nx, al/nx)
		}
	})
	b.Run("s3", func(b *testing.B) {
		m := testenv.MinIO(b)
		cfg := m.Config(m.NewBucket(b, false))
		_, port, _ := strings.Cut(cfg.Endpoint, ":")
		cfg.PublicURL = "http://127.0.0.1:" + port
		ctx := context.Background()
		blobs, err := s3store.New(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		info := putFile(b, blobs, file)
		url := artifactRegistry(b, blobs, info)
		noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := noFollow.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTemporaryRedirect {
			b.Fatalf("artifact on S3: %s, want a redirect to the store", resp.Status)
		}
		for b.Loop() {
			direct, err := blobs.PresignGet(ctx, info.Digest, 5*time.Minute, "fw.bin")
			if err != nil {
				b.Fatal(err)
			}
			al, mn := pairedMBps(b, url, direct, downloadSize, 5)
			b.ReportMetric(al, "afterlife-MB/s")
			b.ReportMetric(mn, "minio-MB/s")
			figure("artifact download 256 MiB, MinIO: afterlife (redirect) %.0f MB/s | direct GET from MinIO %.0f MB/s | ratio %.2f", al, mn, al/mn)
		}
	})
}
