package registry

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/registry/catalog"
	"github.com/afterlife-oss/afterlife/registry/device"
)

// index is what update checks and target downloads are served from: an
// immutable snapshot of every offerable release, swapped atomically when
// anything changes. Nothing in it is computed per request: offers carry
// their response body, ETag and Content-Length ready to write.
//
// A change of one product makes a new snapshot that shares everything
// else with the old one (layered maps): only that product's offers are
// rebuilt (follow.go).
type index struct {
	gen      int64                     // the registry generation it was built at: another one means a full rebuild
	seq      int64                     // the last registry event it reflects
	devices  layered[[]*productOffers] // device id → products it identifies
	targets  layered[indexedTarget]    // TUF target path → file (releases not yanked)
	products layered[*productPart]     // product → what it put in devices and targets
	offers   int
}

// productPart is what one product contributes to the index, kept so that
// a change of the product replaces exactly that.
type productPart struct {
	offers    *productOffers // nil: nothing offered
	deviceIDs []string       // the catalog's ids of the product when it was read
	targets   []string       // TUF target paths of its releases not yanked
	n         int            // offers
}

// productOffers are one product's offerable releases, newest first, and
// where devices running a yanked version go back to when nothing newer is
// offered (yanked version → the release signed to allow it).
type productOffers struct {
	product         string
	stable          []*offer // stable releases
	testing         []*offer // testing and stable releases
	stableRollback  map[string]*offer
	testingRollback map[string]*offer
}

// An offer's strings are one allocation: the body, then the header
// values; its release id, version and minimum version are substrings of
// the body when they need no escaping (at 1M releases every object the
// index holds is one more for the collector to mark).
type offer struct {
	releaseID  string
	version    string
	minVersion string
	body       string
	hdrs       [2]string    // the ETag and Content-Length headers' values, as etagHdr and lengthHdr hand them out
	rollout    *rolloutPlan // nil: every device of the channel
}

func (o *offer) etag() string { return o.hdrs[0] }

// etagHdr and lengthHdr are header values ready to set, without an
// allocation per answer (net/http does not change them).
func (o *offer) etagHdr() []string   { return o.hdrs[0:1:1] }
func (o *offer) lengthHdr() []string { return o.hdrs[1:2:2] }

// rolloutPlan is a rollout flattened for the update check: the end of
// each stage in unix milliseconds and its percent, in one small block, so
// a check that meets a rollout follows one pointer and compares numbers
// (the 1M-release index does not fit in any cache: every pointer is a
// miss). It answers exactly what device.SignedRollout.Reaches does.
type rolloutPlan struct {
	n        int
	ends     [maxStages]int64 // when stage i ends; the last never does
	percents [maxStages]int
	frozenAt int64 // paused, halted or aborted: the clock stopped here (0: running)
	stopped  bool  // halted or aborted: reaches no more devices
}

func newRolloutPlan(r *device.SignedRollout) *rolloutPlan {
	p := &rolloutPlan{n: min(len(r.Stages), maxStages), stopped: r.State == device.RolloutHalted || r.State == device.RolloutAborted}
	if p.n == 0 {
		return nil // no stages: every device, as StageAt says
	}
	if r.State != device.RolloutActive && !r.PausedAt.IsZero() {
		p.frozenAt = r.PausedAt.UnixMilli()
	}
	end := r.Start.UnixMilli()
	for i := range p.n {
		end += r.Stages[i].DwellSeconds * 1000
		p.ends[i], p.percents[i] = end, r.Stages[i].Percent
	}
	p.ends[p.n-1] = math.MaxInt64
	return p
}

// reaches says whether a device in bucket is in the rollout at nowMs.
func (p *rolloutPlan) reaches(bucket int, nowMs int64) bool {
	if p.stopped || bucket < 0 {
		return false
	}
	if p.frozenAt != 0 {
		nowMs = p.frozenAt
	}
	for i := range p.n {
		if nowMs < p.ends[i] {
			return bucket < p.percents[i]
		}
	}
	return bucket < p.percents[p.n-1]
}

// indexedTarget is a file of the 1M-entry target map: its digest is
// held as bytes, not as a string of its own.
type indexedTarget struct {
	sum     [sha256.Size]byte
	size    int64
	release string // the release it belongs to, named in download receipts
}

// digest is the file's blob digest.
func (t indexedTarget) digest() blob.Digest {
	return blob.Digest("sha256:" + hex.EncodeToString(t.sum[:]))
}

// parseSHA256 reads a blob digest ("sha256:" and 64 lowercase hex
// digits) into bytes.
func parseSHA256(d string) ([sha256.Size]byte, bool) {
	var sum [sha256.Size]byte
	h, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(h) != 2*sha256.Size || strings.ToLower(h) != h {
		return sum, false
	}
	var text [2 * sha256.Size]byte // on the stack, unlike []byte(h)
	copy(text[:], h)
	_, err := hex.Decode(sum[:], text[:])
	return sum, err == nil
}

// indexRelease is what the index needs of a release and its product,
// and no more: a full rebuild holds a million of them at once.
type indexRelease struct {
	ID, Product, Version, Channel, Notes, MinVersion string
	Community, PulledBack, Yanked, Held              bool
	Artifacts                                        []Artifact // their kind, digest, size and target
	RollbackFrom                                     []device.YankedFrom
	Rollout                                          *Rollout
	RiskNotes                                        string
	DeviceIDs                                        []string
	offer                                            *offer // encoded already (Rebuild does it on every core), or nil
	offerTarget                                      string // the offered artifact's target, in the offer's body when it needed no escaping
}

// buildIndex computes the index from releases in batches (their order
// does not matter). Yanked releases are not passed in; pulled-back and
// held ones keep their TUF targets but are offered to nobody.
func buildIndex(batches ...[]indexRelease) *index {
	n := 0
	for _, b := range batches {
		n += len(b)
	}
	ib := newIndexBuilder(n, 0)
	for _, b := range batches {
		ib.add(b)
	}
	return ib.index()
}

// indexBuilder assembles an index batch by batch, so a rebuild assembles
// while rows are still being read and encoded.
type indexBuilder struct {
	targets map[string]indexedTarget
	parts   map[string]*productPart
	prev    *index // the index served now, or nil: how big each product's lists were
}

// newIndexBuilder expects about n releases' targets and the products'
// count.
func newIndexBuilder(n, products int) *indexBuilder {
	return &indexBuilder{targets: make(map[string]indexedTarget, n), parts: make(map[string]*productPart, products)}
}

func (ib *indexBuilder) add(batch []indexRelease) {
	var part *productPart
	for i := range batch {
		r := &batch[i]
		// A range read through the product index comes product by
		// product: then the last row's part is most often this one's.
		if part == nil || i == 0 || batch[i-1].Product != r.Product {
			part = ib.parts[r.Product]
		}
		if part == nil {
			part = &productPart{deviceIDs: r.DeviceIDs}
			if ib.prev != nil {
				part.sizeAs(ib.prev.products.get(r.Product))
			}
			ib.parts[r.Product] = part
		}
		part.add(r, ib.targets)
	}
}

// index orders each product's offers and lists them under their device
// ids; the builder is spent.
func (ib *indexBuilder) index() *index {
	ix := &index{devices: layered[[]*productOffers]{base: make(map[string][]*productOffers, len(ib.parts))},
		targets: layered[indexedTarget]{base: ib.targets}, products: layered[*productPart]{base: ib.parts}}
	// Ordering the offers waits for the last row: it runs on every core.
	parts := slices.Collect(maps.Values(ib.parts))
	var wg sync.WaitGroup
	for chunk := range slices.Chunk(parts, max(1024, len(parts)/runtime.GOMAXPROCS(0)+1)) {
		wg.Go(func() {
			for _, part := range chunk {
				part.finish()
			}
		})
	}
	wg.Wait()
	for _, part := range parts {
		ix.offers += part.n
		if part.offers == nil {
			continue
		}
		for _, d := range part.deviceIDs {
			ix.devices.base[d] = append(ix.devices.base[d], part.offers)
		}
	}
	for _, list := range ix.devices.base {
		sortByProduct(list)
	}
	return ix
}

// add puts a release of the part's product into it, and its artifacts
// into targets.
func (part *productPart) add(r *indexRelease, targets map[string]indexedTarget) {
	if r.offer == nil && !r.PulledBack && !r.Yanked && !r.Held {
		own := *r // the caller's release stays as it was
		var enc offerEncoder
		own.offer = enc.offer(&own)
		r = &own
	}
	for _, a := range r.Artifacts {
		sum, ok := parseSHA256(a.Digest)
		if !ok {
			continue // not a blob digest: no file could be served by it
		}
		// The artifact's strings may be substrings of the row: the
		// offer's copy is kept, or a copy of its own.
		t := a.Target
		if r.offerTarget != "" && t == r.offerTarget {
			t = r.offerTarget
		} else {
			t = strings.Clone(t)
		}
		targets[t] = indexedTarget{sum: sum, size: a.Size, release: r.ID}
		part.targets = append(part.targets, t)
	}
	if r.PulledBack || r.Yanked || r.Held {
		return
	}
	o := r.offer
	po := part.offers
	if po == nil {
		po = &productOffers{}
		part.offers = po
	}
	po.product = r.Product
	po.testing = append(po.testing, o)
	if r.Channel == Stable {
		po.stable = append(po.stable, o)
	}
	for _, y := range r.RollbackFrom {
		po.testingRollback = addRollback(po.testingRollback, y.Version, o)
		if r.Channel == Stable {
			po.stableRollback = addRollback(po.stableRollback, y.Version, o)
		}
	}
	part.n++
}

// sizeAs gives a new part's lists the room the product's lists took in
// the index before (a million appends grow fewer slices, and the lists
// keep no room they do not use).
func (part *productPart) sizeAs(old *productPart, ok bool) {
	if !ok || old == nil {
		return
	}
	part.targets = make([]string, 0, len(old.targets))
	if old.offers != nil {
		part.offers = &productOffers{stable: make([]*offer, 0, len(old.offers.stable)), testing: make([]*offer, 0, len(old.offers.testing))}
	}
}

// finish orders the part's offers newest first.
func (part *productPart) finish() {
	po := part.offers
	if po == nil {
		return
	}
	if len(po.testing) == 0 {
		part.offers = nil // sized as before, but nothing is offered now
		return
	}
	sortNewestFirst(po.testing)
	sortNewestFirst(po.stable)
}

// sortNewestFirst orders offers by version, newest first. Releases are
// mostly read in the order they were published, oldest first, so the list
// is tried reversed before it is sorted: a million releases' versions
// compared n-1 times instead of n log n.
func sortNewestFirst(list []*offer) {
	newestFirst := func(a, b *offer) int { return CompareVersions(b.version, a.version) }
	if slices.IsSortedFunc(list, newestFirst) {
		return
	}
	slices.Reverse(list)
	if !slices.IsSortedFunc(list, newestFirst) {
		slices.SortFunc(list, newestFirst)
	}
}

// sortByProduct orders the products a device id names, as lookup tries
// them.
func sortByProduct(list []*productOffers) {
	slices.SortFunc(list, func(a, b *productOffers) int { return strings.Compare(a.product, b.product) })
}

// addRollback records that devices on the yanked version from may go back
// to o, keeping the newest such release.
func addRollback(m map[string]*offer, from string, o *offer) map[string]*offer {
	if m == nil {
		m = map[string]*offer{}
	}
	if cur := m[from]; cur == nil || CompareVersions(o.version, cur.version) > 0 {
		m[from] = o
	}
	return m
}

// offerEncoder encodes the answers to devices offered releases through
// one scratch buffer, so each offer's strings are allocated once, at
// their size. An offer's ETag is the answer's digest alone: the same
// answer keeps its ETag across changes of other releases and on every
// replica, however each came to hold it.
type offerEncoder struct{ buf []byte }

// offer encodes r's offer, and points r.ID and r.offerTarget at the
// offer's copies of them.
func (enc *offerEncoder) offer(r *indexRelease) *offer {
	a := offered(r.Artifacts)
	var at offerAt
	enc.buf = appendOffer(enc.buf[:0], r, a, &at)
	n := len(enc.buf)
	sum := sha256.Sum256(enc.buf)
	enc.buf = append(enc.buf, '"')
	enc.buf = hex.AppendEncode(enc.buf, sum[:16])
	enc.buf = append(enc.buf, '"')
	enc.buf = strconv.AppendInt(enc.buf, int64(n), 10)
	data := string(enc.buf)
	// verbatim is the value written at i, when it needed no escaping.
	verbatim := func(i int, v string) string {
		if plainJSON(v) {
			return data[i+1 : i+1+len(v)]
		}
		return v
	}
	o := &offer{}
	if r.Rollout != nil {
		if plan := newRolloutPlan(&r.Rollout.SignedRollout); plan != nil {
			// One allocation: the plan sits right behind its offer, so
			// a check that meets it reads memory the offer brought in.
			both := &struct {
				offer
				plan rolloutPlan
			}{plan: *plan}
			o = &both.offer
			o.rollout = &both.plan
		}
	}
	o.releaseID, o.version, o.minVersion = verbatim(at.id, r.ID), verbatim(at.version, r.Version), verbatim(at.minVersion, r.MinVersion)
	o.body = data[:n]
	o.hdrs = [2]string{data[n : n+2+32], data[n+2+32:]}
	r.ID, r.offerTarget = o.releaseID, verbatim(at.target, a.Target)
	return o
}

// plainJSON says whether appendJSONString writes s as it is, between
// quotes (printable ASCII but for the characters it escapes).
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// lookup finds the offer for a device: among the products its id names,
// the newest release on its channel that is newer than current, whose
// min_version current satisfies and whose rollout reaches the device's
// bucket at now (read only when an offer is in a rollout). A device
// running a yanked version with nothing newer is offered the release
// signed to take it back. nil means none.
func (ix *index) lookup(deviceID, current, channel string, bucket int, now func() time.Time) *offer {
	products, ok := ix.devices.get(deviceID)
	if !ok {
		if i := strings.IndexByte(deviceID, ':'); i > 0 && strings.ToLower(deviceID[:i]) != deviceID[:i] {
			products, _ = ix.devices.get(strings.ToLower(deviceID[:i]) + deviceID[i:])
		}
	}
	for _, po := range products {
		list, rollback := po.stable, po.stableRollback
		if channel == Testing {
			list, rollback = po.testing, po.testingRollback
		}
		for _, o := range list {
			if CompareVersions(o.version, current) <= 0 {
				break // the rest are older still
			}
			if o.rollout != nil && !o.rollout.reaches(bucket, now().UnixMilli()) {
				continue
			}
			if o.minVersion == "" || CompareVersions(current, o.minVersion) >= 0 {
				return o
			}
		}
		if o := rollback[current]; o != nil {
			return o
		}
	}
	return nil
}

// Rebuild recomputes the whole update index from the database and the
// catalog and swaps it in: at start, after Refresh, and when following
// the event log cannot (follow.go). It reads the catalog in one query and
// the releases in key ranges of products, one per core, each on a
// connection of its own, and encodes the offers on every core while the
// rows are still being read.
func (s *Service) Rebuild(ctx context.Context) error {
	s.rebuildMu.Lock()
	defer s.rebuildMu.Unlock()
	return s.rebuildLocked(ctx)
}

func (s *Service) rebuildLocked(ctx context.Context) error {
	// The position is read first: what the rows then show may be newer
	// still, and applying those events again changes nothing.
	pos, err := s.position(ctx)
	if err != nil {
		return err
	}
	ix, err := s.loadIndex(ctx)
	if err != nil {
		return err
	}
	ix.gen, ix.seq = pos.gen, pos.seq
	s.index.Store(ix)
	s.m.rebuilds.Inc()
	s.m.gen.Set(float64(ix.gen))
	s.m.seq.Set(float64(ix.seq))
	s.log.Debug("registry: update index rebuilt", "generation", ix.gen, "seq", ix.seq, "offers", ix.offers, "products", len(ix.products.base))
	return nil
}

// loadIndex reads every release not yanked and the catalog, and builds
// an index of them, reading the releases in as many key ranges at once
// as there are cores.
func (s *Service) loadIndex(ctx context.Context) (*index, error) {
	return s.loadIndexIn(ctx, runtime.GOMAXPROCS(0))
}

// loadIndexIn is loadIndex reading the releases in at most ranges key
// ranges of products at once (1: one query).
//
// Each range is one query on a connection of its own, so a product's
// releases are all read in one snapshot; ranges may be read in different
// ones, which, as for the catalog read before them, the events after the
// position the rebuild started from make good (follow.go reads their
// products again).
func (s *Service) loadIndexIn(ctx context.Context, ranges int) (*index, error) {
	type productInfo struct {
		riskNotes string
		deviceIDs []string
	}
	products := map[string]productInfo{}
	if err := s.o.Catalog.Each(ctx, func(p catalog.Product) error {
		products[p.ID] = productInfo{p.RiskNotes, p.DeviceIDs}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("registry: rebuild index: %w", err)
	}
	bounds, err := s.productBounds(ctx, slices.Collect(maps.Keys(products)), ranges)
	if err != nil {
		return nil, err
	}
	// Each range's rows are read by a goroutine of their own, decoded and
	// encoded as offers by workers, in batches; the index does not depend
	// on the order of releases.
	const batch = 2048
	workers := runtime.GOMAXPROCS(0)
	work := make(chan []indexRow, workers)
	done := make(chan []indexRelease, workers)
	var firstErr error
	var errOnce sync.Once
	fail := func(err error) { errOnce.Do(func() { firstErr = err }) }
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			var enc offerEncoder
			for raw := range work {
				out := make([]indexRelease, len(raw))
				var p productInfo
				k := 0 // releases decoded; a row that is not fails the rebuild
				for i := range raw {
					if i == 0 || raw[i-1].product != raw[i].product {
						p = products[raw[i].product]
					}
					r := &out[k]
					if err := raw[i].decode(r); err != nil {
						fail(err)
						continue
					}
					r.RiskNotes, r.DeviceIDs = p.riskNotes, p.deviceIDs
					if !r.PulledBack && !r.Held {
						r.offer = enc.offer(r)
						r.Notes = "" // in the offer's body now
					}
					k++
				}
				done <- out[:k]
			}
		})
	}
	// The index is assembled as batches come in; the size of the index
	// served now is the guess for the size of the new one.
	expect := 0
	if cur := s.index.Load(); cur != nil {
		expect = len(cur.targets.base) + len(cur.targets.over)
	}
	ib := newIndexBuilder(expect, len(products))
	ib.prev = s.index.Load()
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		warned := map[string]bool{}
		for out := range done {
			for i := range out {
				if _, ok := products[out[i].Product]; !ok && !warned[out[i].Product] {
					warned[out[i].Product] = true
					s.log.Warn("registry: release of an unknown product is not offered", "release", out[i].ID, "product", out[i].Product)
				}
			}
			ib.add(out)
		}
	}()
	var readers sync.WaitGroup
	for i := 0; i <= len(bounds); i++ {
		lo, hi := "", ""
		if i > 0 {
			lo = bounds[i-1]
		}
		if i < len(bounds) {
			hi = bounds[i]
		}
		readers.Go(func() {
			if err := s.readReleases(ctx, lo, hi, batch, work); err != nil {
				fail(fmt.Errorf("registry: rebuild index: %w", err))
			}
		})
	}
	readers.Wait()
	close(work)
	wg.Wait()
	close(done)
	<-collected
	if firstErr != nil {
		return nil, firstErr
	}
	return ib.index(), nil
}

// productBounds splits the products into at most n key ranges of about
// as many products each: the n-1 (or fewer) product ids between them, in
// the database's own order of text (which need not be Go's: the ranges
// are compared there).
func (s *Service) productBounds(ctx context.Context, ids []string, n int) ([]string, error) {
	if n <= 1 || len(ids) < 2*n {
		return nil, nil
	}
	slices.Sort(ids)
	bounds := make([]string, 0, n-1)
	for i := 1; i < n; i++ {
		bounds = append(bounds, ids[i*len(ids)/n])
	}
	bounds = slices.Compact(bounds)
	if len(bounds) == 1 {
		return bounds, nil // two ranges cover every product in any order
	}
	args := make([]any, len(bounds))
	values := make([]string, len(bounds))
	for i, b := range bounds {
		args[i], values[i] = b, "(?)"
	}
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT column1 FROM (VALUES `+strings.Join(values, ", ")+`) AS bounds ORDER BY column1`), args...)
	if err != nil {
		return nil, fmt.Errorf("registry: rebuild index: order ranges: %w", db.Classify(err))
	}
	defer rows.Close()
	bounds = bounds[:0]
	for rows.Next() {
		var b string
		if err := rows.Scan(&b); err != nil {
			return nil, fmt.Errorf("registry: rebuild index: order ranges: %w", db.Classify(err))
		}
		bounds = append(bounds, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("registry: rebuild index: order ranges: %w", db.Classify(err))
	}
	return bounds, nil
}

// readReleases reads the releases not yanked of the products from lo
// (inclusive; "": from the first) to hi (exclusive; "": to the last) and
// sends them to work in batches of size.
func (s *Service) readReleases(ctx context.Context, lo, hi string, size int, work chan<- []indexRow) error {
	q, args := `SELECT `+indexCols+` FROM releases WHERE yanked = 0`, []any{}
	if lo != "" {
		q, args = q+` AND product >= ?`, append(args, lo)
	}
	if hi != "" {
		q, args = q+` AND product < ?`, append(args, hi)
	}
	rows, err := s.db.QueryContext(ctx, s.db.Q(q), args...)
	if err != nil {
		return db.Classify(err)
	}
	defer rows.Close()
	cur := make([]indexRow, 0, size)
	for rows.Next() {
		cur = append(cur, indexRow{})
		if err := cur[len(cur)-1].scan(rows); err != nil {
			return db.Classify(err)
		}
		if len(cur) == size {
			work <- cur
			cur = make([]indexRow, 0, size)
		}
	}
	if err := rows.Err(); err != nil {
		return db.Classify(err)
	}
	if len(cur) > 0 {
		work <- cur
	}
	return nil
}

// indexCols are the columns of a release the index reads.
const indexCols = `id, product, version, channel, notes, min_version, artifacts, community, pulled_back, held, rollback_from, rollout`

// indexRow is a release row as read, decoded off the reading goroutine.
type indexRow struct {
	id, product, version, channel, notes, minVersion, artifacts string
	community, pulledBack, held                                 int
	rollbackFrom, rollout                                       string
}

func (x *indexRow) scan(rows *sql.Rows) error {
	return rows.Scan(&x.id, &x.product, &x.version, &x.channel, &x.notes, &x.minVersion, &x.artifacts,
		&x.community, &x.pulledBack, &x.held, &x.rollbackFrom, &x.rollout)
}

// decode reads the row into r.
func (x *indexRow) decode(r *indexRelease) error {
	*r = indexRelease{ID: x.id, Product: x.product, Version: x.version, Channel: x.channel, Notes: x.notes,
		MinVersion: x.minVersion, Community: x.community == 1, PulledBack: x.pulledBack == 1, Held: x.held == 1}
	if x.rollbackFrom != "" {
		if err := json.Unmarshal([]byte(x.rollbackFrom), &r.RollbackFrom); err != nil {
			return errs.Wrap(errs.Internal, err, "registry: release %s has an unreadable rollback_from", r.ID)
		}
	}
	if x.rollout != "" {
		r.Rollout = &Rollout{}
		if err := json.Unmarshal([]byte(x.rollout), r.Rollout); err != nil {
			return errs.Wrap(errs.Internal, err, "registry: release %s has an unreadable rollout", r.ID)
		}
	}
	var err error
	if r.Artifacts, err = decodeIndexArtifacts(x.artifacts); err != nil || len(r.Artifacts) == 0 {
		return errs.Wrap(errs.Internal, err, "registry: release %s has no readable artifacts", r.ID)
	}
	return nil
}

// position is where the registry stands: its generation and the last
// event of its log, read together.
type position struct{ gen, seq int64 }

func (s *Service) position(ctx context.Context) (position, error) {
	var p position
	if err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT generation, (SELECT COALESCE(MAX(seq), 0) FROM registry_events)
		FROM registry_generation WHERE id = 1`)).Scan(&p.gen, &p.seq); err != nil {
		return p, fmt.Errorf("registry: index position: %w", db.Classify(err))
	}
	return p, nil
}

// Refresh tells every replica that something the index is built from
// changed outside the registry and its event log (a device id moved to
// another product): it bumps the generation, which makes every replica
// rebuild its index whole, this one at once.
func (s *Service) Refresh(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, s.db.Q(`UPDATE registry_generation SET generation = generation + 1 WHERE id = 1`)); err != nil {
		return fmt.Errorf("registry: refresh: %w", db.Classify(err))
	}
	return s.Rebuild(ctx)
}

// Generation is the index generation this replica serves.
func (s *Service) Generation() int64 { return s.index.Load().gen }

// IndexSeq is the last registry event the index this replica serves
// reflects.
func (s *Service) IndexSeq() int64 { return s.index.Load().seq }
