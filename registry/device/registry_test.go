package device_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/afterlife-oss/afterlife/registry/device"
	"github.com/afterlife-oss/afterlife/registry/tuf"
)

// testRegistry is a small registry: the real TUF repository, target files
// from a map by digest, and the device update and report endpoints.
type testRegistry struct {
	repo   *tuf.Repo
	store  *tuf.MemStore
	keyDir string
	srv    *httptest.Server

	mu               sync.Mutex
	blobs            map[string][]byte // sha256 hex → bytes served
	offer            *device.Offer
	reports          []device.Report
	updateRequests   []url.Values
	unavailable      int  // how many update checks still answer 503
	cutFirstDownload bool // close the first full download half-way
	ranges           []string
}

func newTestRegistry() (*testRegistry, error) {
	keyDir, err := os.MkdirTemp("", "afterlife-tuf-keys-")
	if err != nil {
		return nil, err
	}
	r := &testRegistry{store: tuf.NewMemStore(), keyDir: keyDir, blobs: map[string][]byte{}}
	if r.repo, err = tuf.Open(context.Background(), r.store, keyDir, time.Now); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/devices/updates", r.updates)
	mux.HandleFunc("POST /v1/devices/reports", r.reportsHandler)
	mux.HandleFunc("/tuf/targets/", r.target)
	mux.Handle("/tuf/", r.repo.Handler())
	r.srv = httptest.NewServer(mux)
	return r, nil
}

func (r *testRegistry) close() {
	r.srv.Close()
	_ = os.RemoveAll(r.keyDir)
}

func (r *testRegistry) root() []byte {
	b, err := r.store.GetMeta(context.Background(), "1.root.json")
	if err != nil {
		return nil
	}
	return b
}

// publish signs a release into the TUF repository and makes it the offer.
func (r *testRegistry) publish(version string, content []byte, community bool, risk string) (*device.Offer, error) {
	sum := sha256.Sum256(content)
	hexSum := hex.EncodeToString(sum[:])
	path := r.repo.TargetPath("demo-cam", version, "afterlife-cam.tar.gz")
	err := r.repo.Apply(context.Background(), []tuf.Target{{Path: path, Length: int64(len(content)), SHA256: hexSum}}, nil)
	if err != nil {
		return nil, err
	}
	o := &device.Offer{
		Product: "demo-cam", ReleaseID: "rel_" + version, Version: version, Channel: "stable",
		Notes: "open firmware", Community: community, RiskNotes: risk,
		Target: device.OfferTarget{Path: path, Length: int64(len(content)), Hashes: map[string]string{"sha256": hexSum}},
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.blobs[hexSum] = content
	r.offer = o
	return o, nil
}

func (r *testRegistry) updates(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.updateRequests = append(r.updateRequests, req.URL.Query())
	if r.unavailable > 0 {
		r.unavailable--
		w.Header().Set("Retry-After", "1")
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	if r.offer == nil || req.URL.Query().Get("version") == r.offer.Version {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(r.offer)
}

func (r *testRegistry) reportsHandler(w http.ResponseWriter, req *http.Request) {
	var rep device.Report
	if err := json.NewDecoder(req.Body).Decode(&rep); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.reports = append(r.reports, rep)
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (r *testRegistry) target(w http.ResponseWriter, req *http.Request) {
	_, hash, name, ok := tuf.ParseTargetRequest(req.URL.Path)
	r.mu.Lock()
	b, found := r.blobs[hash]
	r.ranges = append(r.ranges, req.Header.Get("Range"))
	cut := r.cutFirstDownload && req.Header.Get("Range") == ""
	if cut {
		r.cutFirstDownload = false
	}
	r.mu.Unlock()
	if !ok || !found {
		http.NotFound(w, req)
		return
	}
	if cut {
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(b[:len(b)/2])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // drop the connection mid-body
	}
	if id := req.Header.Get("Afterlife-Install-Id"); id != "" {
		w.Header().Set("Afterlife-Receipt", receiptFor(hash, id))
	}
	http.ServeContent(w, req, name, time.Time{}, bytes.NewReader(b))
}

// receiptFor is the test registry's receipt for a download of the file
// with that digest by that install.
func receiptFor(sha256Hex, installID string) string {
	return "rcpt-" + sha256Hex[:12] + "-" + installID
}

func (r *testRegistry) tamper(sum string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := bytes.Clone(r.blobs[sum])
	b[len(b)/3] ^= 0xff
	r.blobs[sum] = b
}

func (r *testRegistry) gotReports() []device.Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]device.Report(nil), r.reports...)
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
