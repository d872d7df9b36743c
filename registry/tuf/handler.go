package tuf

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Handler serves the metadata files from the Store at /tuf/<name> (it also
// accepts the name without the /tuf prefix, for a mount that strips it).
// root.json and timestamp.json change in place and are sent with
// "Cache-Control: no-cache"; versioned files never change and are
// immutable. Target files are not served here.
func (r *Repo) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := strings.TrimPrefix(req.URL.Path, "/tuf/")
		name = strings.TrimPrefix(name, "/")
		if !servable(name) {
			http.NotFound(w, req)
			return
		}
		data, err := r.store.GetMeta(req.Context(), name)
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
		if name == "root.json" || name == "timestamp.json" {
			h.Set("Cache-Control", "no-cache")
		} else {
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
		}
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
