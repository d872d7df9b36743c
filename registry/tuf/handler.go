package tuf

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Meta returns the metadata file a client fetches as /tuf/<name>, and
// the Cache-Control it is served with: root.json and timestamp.json
// change in place ("no-cache"); versioned files never change and are
// immutable. A name that is not servable metadata, or not stored, is
// errs.NotFound.
func (r *Repo) Meta(ctx context.Context, name string) (data []byte, cacheControl string, err error) {
	if !servable(name) {
		return nil, "", errs.E(errs.NotFound, "no TUF metadata named %q", name)
	}
	data, err = r.store.GetMeta(ctx, name)
	if errs.Is(err, errs.NotFound) {
		return nil, "", errs.E(errs.NotFound, "no TUF metadata named %q", name)
	}
	if err != nil {
		return nil, "", fmt.Errorf("tuf: serve %s: %w", name, err)
	}
	if name == "root.json" || name == "timestamp.json" {
		return data, "no-cache", nil
	}
	return data, "public, max-age=31536000, immutable", nil
}

// Handler serves the metadata files from the Store at /tuf/<name> (it also
// accepts the name without the /tuf prefix, for a mount that strips it),
// with the Cache-Control of Meta. Target files are not served here. The
// registry's own route serves Meta through its API error handling instead.
func (r *Repo) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := strings.TrimPrefix(req.URL.Path, "/tuf/")
		name = strings.TrimPrefix(name, "/")
		data, cc, err := r.Meta(req.Context(), name)
		if errs.Is(err, errs.NotFound) {
			http.NotFound(w, req)
			return
		}
		if err != nil {
			r.o.Logger.Error("tuf: serve metadata", "name", name, "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(data)))
		h.Set("Cache-Control", cc)
		w.WriteHeader(http.StatusOK)
		if req.Method == http.MethodGet {
			_, _ = w.Write(data)
		}
	})
}

// servable is true for metadata names a client may fetch: one path
// element ending in .json, never internal state.
func servable(name string) bool {
	return strings.HasSuffix(name, ".json") && !strings.Contains(name, "/") && validName(name)
}
