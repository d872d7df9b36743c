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
	listed           map[string][]device.ListedTarget // product → its release list
	noUpdateAPI      bool                             // answer update checks 404, as a static mirror does
}

func newTestRegistry() (*testRegistry, error) {
	keyDir, err := os.MkdirTemp("", "afterlife-tuf-keys-")
	if err != nil {
		return nil, err
	}
	r := &testRegistry{store: tuf.NewMemStore(), keyDir: keyDir, blobs: map[string][]byte{}, listed: map[string][]device.ListedTarget{}}
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

// release says what publishWith signs.
type release struct {
	product    string   // default demo-cam
	channel    string   // default stable
	deviceIDs  []string // default cam-0001
	community  bool
	risk       string
	minVersion string
	rollback   *device.SignedRollback
	fromYanked []device.YankedFrom // signed rollback_from_yanked
	yanked     string              // signed as yanked with this reason
	unsigned   bool                // no signed release fields, as before they existed
	logEntry   *device.SignedLogEntry
}

// publish signs a release into the TUF repository and makes it the offer.
func (r *testRegistry) publish(version string, content []byte, community bool, risk string) (*device.Offer, error) {
	return r.publishWith(version, content, release{community: community, risk: risk})
}

// publishWith signs a release with its signed fields and the product's
// release list, and makes it the offer.
func (r *testRegistry) publishWith(version string, content []byte, rel release) (*device.Offer, error) {
	if rel.product == "" {
		rel.product = "demo-cam"
	}
	if rel.channel == "" {
		rel.channel = "stable"
	}
	if rel.deviceIDs == nil {
		rel.deviceIDs = []string{"cam-0001"}
	}
	sum := sha256.Sum256(content)
	hexSum := hex.EncodeToString(sum[:])
	path := r.repo.TargetPath(rel.product, version, "afterlife-cam.tar.gz")
	t := tuf.Target{Path: path, Length: int64(len(content)), SHA256: hexSum}
	if !rel.unsigned {
		t.Custom = device.TargetMeta{
			Schema: device.SchemaVersion, Product: rel.product, Version: version, Channel: rel.channel, ReleaseID: "rel_" + version,
			Kind: "firmware", Community: &rel.community, MinVersion: rel.minVersion, DeviceIDs: rel.deviceIDs, RiskNotes: rel.risk,
			Rollback: rel.rollback, RollbackFromYanked: rel.fromYanked, Yanked: rel.yanked != "", YankReason: rel.yanked,
			Log: rel.logEntry,
		}.Custom()
	}
	r.mu.Lock()
	r.listed[rel.product] = append(r.listed[rel.product], device.ListedTarget{Version: version, Channel: rel.channel, Target: path, MinVersion: rel.minVersion})
	list := map[string]any{"afterlife": device.SchemaVersion, "product": rel.product, "releases": r.listed[rel.product]}
	r.mu.Unlock()
	empty := sha256.Sum256(nil)
	listTarget := tuf.Target{Path: device.ReleaseListPath(rel.product), SHA256: hex.EncodeToString(empty[:]), Custom: list}
	if err := r.repo.Apply(context.Background(), []tuf.Target{t, listTarget}, nil); err != nil {
		return nil, err
	}
	o := &device.Offer{
		Product: rel.product, ReleaseID: "rel_" + version, Version: version, Channel: rel.channel,
		Notes: "open firmware", Community: rel.community, RiskNotes: rel.risk, MinVersion: rel.minVersion,
		Target: device.OfferTarget{Path: path, Length: int64(len(content)), Hashes: map[string]string{"sha256": hexSum}},
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.blobs[hexSum] = content
	r.offer = o
	return o, nil
}

// spoof replaces the offer, as a hostile network would.
func (r *testRegistry) spoof(o device.Offer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.offer = &o
}

func (r *testRegistry) updates(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.updateRequests = append(r.updateRequests, req.URL.Query())
	if r.noUpdateAPI {
		http.NotFound(w, req)
		return
	}
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
