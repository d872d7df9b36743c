package registry

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/maphash"
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
// It holds a few objects per product, not per release, and its bulk
// holds no pointers: each cycle of the garbage collector marks every
// pointer the process holds, and with 1M releases of small objects the
// update checks served while it marked were the slowest ones
// (docs/benchmarks.md). A product's strings are one arena; its offers,
// rollout plans and files are records of numbers into it, its channels
// and rollbacks lists of those records' numbers; the TUF target map is
// keyed by a hash of the path and names a product's slot and a file's
// number (maps whose keys and values hold no pointers are not scanned).
//
// A change of one product makes a new snapshot that shares everything
// else with the old one (layered maps): only that product's part is
// rebuilt (follow.go).
type index struct {
	gen      int64                           // the registry generation it was built at: another one means a full rebuild
	seq      int64                           // the last registry event it reflects
	seeds    pathSeeds                       // how target paths are hashed into the keys of targets
	devices  layered[string, []*productPart] // device id → products it identifies, by product id
	targets  layered[pathKey, targetRef]     // TUF target path → file (releases not yanked)
	products layered[string, *productPart]   // product → what it put in devices and targets
	parts    []*productPart                  // by slot: the parts targets name
	offers   int
}

// productPart is what one product contributes to the index, kept so that
// a change of the product replaces exactly that: its offerable releases,
// newest first (testing and stable ones, each marked), where devices running a yanked version
// go back to when nothing newer is offered (yanked version → the release
// signed to allow it), and the TUF targets of its releases not yanked.
// Every string of it but its id and device ids is a substring of arena.
type productPart struct {
	product         string
	slot            uint32   // its place in index.parts
	deviceIDs       []string // the catalog's ids of the product when it was read
	arena           string
	offers          []offerRec    // newest first
	stableRollback  []rollbackRec // by yanked version
	testingRollback []rollbackRec
	files           []fileRec
	dropped         int          // releases left out: the arena would have passed 4 GiB
	b               *partBuilder // while the part is built; nil once finished
}

// span is a string of a part's arena. An arena holds less than 4 GiB
// (add leaves out a release that would pass it): release notes are at
// most 64 KiB, so a product would need thousands of releases of notes
// that all need escaping to get there.
type span struct{ at, n uint32 }

func (part *productPart) str(s span) string { return part.arena[s.at : s.at+s.n] }

// offerRec is an offer: the answer to write (its body, then its ETag's
// and Content-Length's values) and what lookup compares. The release id,
// version and minimum version are substrings of the body when they
// needed no escaping there.
type offerRec struct {
	body, etag, length             span
	releaseID, version, minVersion span
	plan                           uint32 // 1 + where its rollout plan is encoded (encode); 0: every device of the channel
	stable                         bool   // offered on the stable channel too
}

// rollbackRec says that devices on the yanked version from go back to
// offer.
type rollbackRec struct {
	from  span
	offer int32
}

// fileRec is a TUF target of a release not yanked: its digest is held as
// bytes, its path (a substring of an offer's body when it is the offered
// file) and release (named in download receipts) in the arena.
type fileRec struct {
	path, release span
	sum           [sha256.Size]byte
	size          int64
}

// offer is one offer as lookup answers it, its strings those of its
// product's arena.
type offer struct {
	releaseID, version, minVersion string
	body, etag, length             string // the answer, and its ETag's and Content-Length's values
	rollout                        string // its rollout plan encoded (decodePlan); "": every device of the channel
}

func (part *productPart) offer(i int32) offer {
	o := &part.offers[i]
	v := offer{releaseID: part.str(o.releaseID), version: part.str(o.version), minVersion: part.str(o.minVersion),
		body: part.str(o.body), etag: part.str(o.etag), length: part.str(o.length)}
	if o.plan != 0 {
		p := part.arena[o.plan-1:]
		v.rollout = p[:planLen(int(p[0]))]
	}
	return v
}

// rollbackFor is the offer of list (sorted by version) for devices on the
// yanked version from.
func (part *productPart) rollbackFor(list []rollbackRec, from string) (int32, bool) {
	lo, hi := 0, len(list)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		switch c := strings.Compare(part.str(list[m].from), from); {
		case c == 0:
			return list[m].offer, true
		case c < 0:
			lo = m + 1
		default:
			hi = m
		}
	}
	return 0, false
}

// partBuilder is what a part needs while releases are added to it.
type partBuilder struct {
	arena           strings.Builder  // sized as the part was before, it becomes the arena without a copy
	scratch         []byte           // an offer not encoded yet
	versions        []string         // each offer's version, until the arena is made
	pending         int              // what finish will add to the arena at most (the rollbacks' versions)
	limit           uint64           // the most the arena may hold: spans are 32 bits
	stableRollback  map[string]int32 // yanked version → the newest offer signed to take devices back
	testingRollback map[string]int32
}

func newProductPart(product string, slot uint32, deviceIDs []string) *productPart {
	return &productPart{product: product, slot: slot, deviceIDs: deviceIDs, b: &partBuilder{limit: math.MaxUint32}}
}

// rolloutPlan is a rollout flattened for the update check: the end of
// each stage in unix milliseconds and its percent, in one small block, so
// a check that meets a rollout compares numbers. It answers exactly what
// device.SignedRollout.Reaches does.
type rolloutPlan struct {
	n        int
	ends     [maxStages]int64 // when stage i ends; the last never does
	percents [maxStages]int
	frozenAt int64 // paused, halted or aborted: the clock stopped here (0: running)
	stopped  bool  // halted or aborted: reaches no more devices
}

// newRolloutPlan flattens r; false: no stages, every device, as StageAt
// says.
func newRolloutPlan(r *device.SignedRollout) (rolloutPlan, bool) {
	p := rolloutPlan{n: min(len(r.Stages), maxStages), stopped: r.State == device.RolloutHalted || r.State == device.RolloutAborted}
	if p.n == 0 {
		return p, false
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
	return p, true
}

// planLen is the length of a plan of n stages encoded.
func planLen(n int) int { return 10 + 16*n }

// encode appends the plan to b: its stages' count, whether it stopped,
// when it froze, then each stage's end and percent (little-endian).
func (p *rolloutPlan) encode(b []byte) []byte {
	stopped := byte(0)
	if p.stopped {
		stopped = 1
	}
	b = append(b, byte(p.n), stopped)
	b = binary.LittleEndian.AppendUint64(b, uint64(p.frozenAt))
	for i := range p.n {
		b = binary.LittleEndian.AppendUint64(b, uint64(p.ends[i]))
		b = binary.LittleEndian.AppendUint64(b, uint64(p.percents[i]))
	}
	return b
}

// decodePlan reads a plan encode wrote at the start of s.
func decodePlan(s string) rolloutPlan {
	at := func(i int) int64 {
		return int64(uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56)
	}
	p := rolloutPlan{n: int(s[0]), stopped: s[1] == 1, frozenAt: at(2)}
	for i := range p.n {
		p.ends[i], p.percents[i] = at(10+16*i), int(at(18+16*i))
	}
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

// pathKey is a TUF target path hashed: the key of the target map, which
// the collector need not scan. Two seeds make it 128 bits, so two paths
// of an index share one with a chance of about n²/2¹²⁹, and the seeds
// are secret, so nobody can choose paths that do; a lookup compares the
// path itself, so a shared key could hide a file, never serve another.
type pathKey [2]uint64

// pathSeeds hash the paths of one index and of the indexes that follow
// from it.
type pathSeeds [2]maphash.Seed

func newPathSeeds() pathSeeds { return pathSeeds{maphash.MakeSeed(), maphash.MakeSeed()} }

func (s pathSeeds) key(path string) pathKey {
	return pathKey{maphash.String(s[0], path), maphash.String(s[1], path)}
}

// targetRef names a file: the slot of its product's part and its number
// there.
type targetRef struct{ slot, file uint32 }

// indexedTarget is a TUF target as the index serves it.
type indexedTarget struct {
	sum     [sha256.Size]byte
	size    int64
	release string // the release it belongs to, named in download receipts
}

// digest is the file's blob digest.
func (t indexedTarget) digest() blob.Digest {
	return blob.Digest("sha256:" + hex.EncodeToString(t.sum[:]))
}

// target finds the file at a TUF target path.
func (ix *index) target(path string) (indexedTarget, bool) {
	ref, ok := ix.targets.get(ix.seeds.key(path))
	if !ok {
		return indexedTarget{}, false
	}
	part := ix.parts[ref.slot]
	if int(ref.file) >= len(part.files) {
		return indexedTarget{}, false
	}
	f := &part.files[ref.file]
	if part.str(f.path) != path {
		return indexedTarget{}, false
	}
	return indexedTarget{sum: f.sum, size: f.size, release: part.str(f.release)}, true
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
	enc                                              offerEncoding // encoded already (Rebuild does it on every core), or not (no data)
}

// offerEncoding is a release's offer encoded: the body, its ETag and its
// Content-Length one after another, and where in the body the strings
// an offer and its file keep are.
type offerEncoding struct {
	data []byte
	body int // the body's length
	at   offerAt
}

// encodeOffer appends r's offer to buf: the body, then the ETag's and
// Content-Length's values. An offer's ETag is the answer's digest alone:
// the same answer keeps its ETag across changes of other releases and on
// every replica, however each came to hold it.
func encodeOffer(buf []byte, r *indexRelease) ([]byte, offerEncoding) {
	start := len(buf)
	var e offerEncoding
	buf = appendOffer(buf, r, offered(r.Artifacts), &e.at)
	e.at.id, e.at.version, e.at.minVersion, e.at.target = e.at.id-start, e.at.version-start, e.at.minVersion-start, e.at.target-start
	e.body = len(buf) - start
	sum := sha256.Sum256(buf[start:])
	buf = append(buf, '"')
	buf = hex.AppendEncode(buf, sum[:16])
	buf = append(buf, '"')
	return strconv.AppendInt(buf, int64(e.body), 10), e
}

// etagLen is the length of an offer's ETag: 32 hex digits in quotes.
const etagLen = 2 + 32

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
	seeds   pathSeeds
	targets map[pathKey]targetRef
	parts   map[string]*productPart
	slots   []*productPart
	prev    *index // the index served now, or nil: how big each product's part was
}

// newIndexBuilder expects about n releases' targets and the products'
// count.
func newIndexBuilder(n, products int) *indexBuilder {
	return &indexBuilder{seeds: newPathSeeds(), targets: make(map[pathKey]targetRef, n),
		parts: make(map[string]*productPart, products), slots: make([]*productPart, 0, products)}
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
			part = newProductPart(r.Product, uint32(len(ib.slots)), r.DeviceIDs)
			if ib.prev != nil {
				part.sizeAs(ib.prev.products.get(r.Product))
			}
			ib.parts[r.Product] = part
			ib.slots = append(ib.slots, part)
		}
		part.add(r, ib.seeds, ib.targets)
	}
}

// index finishes each product's part and lists its offers under its
// device ids; the builder is spent.
func (ib *indexBuilder) index() *index {
	ix := &index{seeds: ib.seeds, devices: layered[string, []*productPart]{base: make(map[string][]*productPart, len(ib.parts))},
		targets: layered[pathKey, targetRef]{base: ib.targets}, products: layered[string, *productPart]{base: ib.parts}, parts: ib.slots}
	// Finishing the parts waits for the last row: it runs on every core.
	var wg sync.WaitGroup
	for chunk := range slices.Chunk(ib.slots, max(1024, len(ib.slots)/runtime.GOMAXPROCS(0)+1)) {
		wg.Go(func() {
			for _, part := range chunk {
				part.finish()
			}
		})
	}
	wg.Wait()
	for _, part := range ib.slots {
		ix.offers += len(part.offers)
		if len(part.offers) == 0 {
			continue
		}
		for _, d := range part.deviceIDs {
			ix.devices.base[d] = append(ix.devices.base[d], part)
		}
	}
	for _, list := range ix.devices.base {
		sortByProduct(list)
	}
	return ix
}

// add puts a release of the part's product into it, and its files into
// targets (when not nil; follow.go puts them in once the part has its
// slot).
func (part *productPart) add(r *indexRelease, seeds pathSeeds, targets map[pathKey]targetRef) {
	b := part.b
	base := b.arena.Len()
	isOffered := !r.PulledBack && !r.Yanked && !r.Held
	e, data := r.enc, r.enc.data
	if isOffered && data == nil {
		b.scratch, e = encodeOffer(b.scratch[:0], r)
		data = b.scratch
	}
	// The most this release may add to the arena, now and in finish.
	most, later := len(data)+len(r.ID)+len(r.Version)+len(r.MinVersion)+planLen(maxStages), 0
	for _, a := range r.Artifacts {
		most += len(a.Target)
	}
	for _, y := range r.RollbackFrom {
		later += 2 * len(y.Version)
	}
	if uint64(base)+uint64(b.pending)+uint64(most)+uint64(later) > b.limit {
		part.dropped++
		return
	}
	b.pending += later
	var o offerRec
	var release, offeredPath span
	offeredTarget := ""
	if isOffered {
		if r.Rollout != nil {
			if plan, ok := newRolloutPlan(&r.Rollout.SignedRollout); ok {
				// Right before the body, whose version a check reads
				// first: a check that meets a rollout reads memory the
				// version brought in.
				o.plan = uint32(base) + 1
				var enc [10 + 16*maxStages]byte
				b.arena.Write(plan.encode(enc[:0]))
				base = b.arena.Len()
			}
		}
		b.arena.Write(data)
		bodyEnd := base + e.body
		o.body = span{uint32(base), uint32(e.body)}
		o.etag = span{uint32(bodyEnd), etagLen}
		o.length = span{uint32(bodyEnd + etagLen), uint32(len(data) - e.body - etagLen)}
		o.releaseID = b.keep(base+e.at.id, r.ID)
		o.version = b.keep(base+e.at.version, r.Version)
		o.minVersion = b.keep(base+e.at.minVersion, r.MinVersion)
		offeredTarget = offered(r.Artifacts).Target
		offeredPath = b.keep(base+e.at.target, offeredTarget)
		release = o.releaseID
	} else {
		release = b.appendStr(r.ID)
	}
	for _, a := range r.Artifacts {
		sum, ok := parseSHA256(a.Digest)
		if !ok {
			continue // not a blob digest: no file could be served by it
		}
		path := offeredPath
		if !isOffered || a.Target != offeredTarget {
			path = b.appendStr(a.Target)
		}
		if targets != nil {
			targets[seeds.key(a.Target)] = targetRef{part.slot, uint32(len(part.files))}
		}
		part.files = append(part.files, fileRec{path: path, release: release, sum: sum, size: a.Size})
	}
	if !isOffered {
		return
	}
	o.stable = r.Channel == Stable
	i := int32(len(part.offers))
	part.offers = append(part.offers, o)
	b.versions = append(b.versions, r.Version)
	for _, y := range r.RollbackFrom {
		b.testingRollback = b.addRollback(b.testingRollback, y.Version, i)
		if r.Channel == Stable {
			b.stableRollback = b.addRollback(b.stableRollback, y.Version, i)
		}
	}
}

// keep is v, written by appendOffer at i (its opening quote): a substring
// of the body when it needed no escaping there, else a copy of its own.
func (b *partBuilder) keep(i int, v string) span {
	if plainJSON(v) {
		return span{uint32(i + 1), uint32(len(v))}
	}
	return b.appendStr(v)
}

func (b *partBuilder) appendStr(s string) span {
	at := b.arena.Len()
	b.arena.WriteString(s)
	return span{uint32(at), uint32(len(s))}
}

// addRollback records that devices on the yanked version from may go back
// to offer i, keeping the newest such release.
func (b *partBuilder) addRollback(m map[string]int32, from string, i int32) map[string]int32 {
	if m == nil {
		m = map[string]int32{}
	}
	if cur, ok := m[from]; !ok || CompareVersions(b.versions[i], b.versions[cur]) > 0 {
		m[from] = i
	}
	return m
}

// sizeAs gives a new part the room the product's part took in the index
// before (a million appends grow fewer slices, and the part keeps no room
// it does not use).
func (part *productPart) sizeAs(old *productPart, ok bool) {
	if !ok || old == nil {
		return
	}
	part.b.arena.Grow(len(old.arena))
	part.b.versions = make([]string, 0, len(old.offers))
	part.files = make([]fileRec, 0, len(old.files))
	part.offers = make([]offerRec, 0, len(old.offers))
}

// finish makes the part's arena and orders its offers newest first.
func (part *productPart) finish() {
	b := part.b
	if b == nil {
		return
	}
	part.b = nil
	rollbacks := func(m map[string]int32) []rollbackRec {
		if len(m) == 0 {
			return nil
		}
		list := make([]rollbackRec, 0, len(m))
		for from, i := range m {
			list = append(list, rollbackRec{from: b.appendStr(from), offer: i})
		}
		return list
	}
	part.testingRollback = rollbacks(b.testingRollback)
	part.stableRollback = rollbacks(b.stableRollback)
	part.arena = b.arena.String()
	if b.arena.Cap()-len(part.arena) > len(part.arena)/4 {
		// Not sized before, it grew into room it does not use. (Less
		// than a quarter is a size class's rounding, which a copy has
		// too.)
		part.arena = strings.Clone(part.arena)
	}
	moved := part.sortNewestFirst()
	for _, list := range [][]rollbackRec{part.testingRollback, part.stableRollback} {
		for i := range list {
			list[i].offer = moved(list[i].offer)
		}
		slices.SortFunc(list, func(x, y rollbackRec) int { return strings.Compare(part.str(x.from), part.str(y.from)) })
	}
}

// sortNewestFirst orders the offers by version, newest first, and
// returns where each went. Releases are mostly read in the order they
// were published, oldest first, so the offers are tried reversed before
// they are sorted: a million releases' versions compared n-1 times
// instead of n log n.
func (part *productPart) sortNewestFirst() (moved func(int32) int32) {
	newestFirst := func(a, b offerRec) int { return CompareVersions(part.str(b.version), part.str(a.version)) }
	n := int32(len(part.offers))
	if slices.IsSortedFunc(part.offers, newestFirst) {
		return func(i int32) int32 { return i }
	}
	slices.Reverse(part.offers)
	if slices.IsSortedFunc(part.offers, newestFirst) {
		return func(i int32) int32 { return n - 1 - i }
	}
	slices.Reverse(part.offers) // as they came, so the numbers below are theirs
	order := make([]int32, n)
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int { return newestFirst(part.offers[a], part.offers[b]) })
	sorted, to := make([]offerRec, n), make([]int32, n)
	for k, i := range order {
		sorted[k], to[i] = part.offers[i], int32(k)
	}
	part.offers = sorted
	return func(i int32) int32 { return to[i] }
}

// sortByProduct orders the products a device id names, as lookup tries
// them.
func sortByProduct(list []*productPart) {
	slices.SortFunc(list, func(a, b *productPart) int { return strings.Compare(a.product, b.product) })
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
// signed to take it back. false means none.
func (ix *index) lookup(deviceID, current, channel string, bucket int, now func() time.Time) (offer, bool) {
	products, ok := ix.devices.get(deviceID)
	if !ok {
		if i := strings.IndexByte(deviceID, ':'); i > 0 && strings.ToLower(deviceID[:i]) != deviceID[:i] {
			products, _ = ix.devices.get(strings.ToLower(deviceID[:i]) + deviceID[i:])
		}
	}
	testing := channel == Testing
	for _, part := range products {
		rollback := part.stableRollback
		if testing {
			rollback = part.testingRollback
		}
		for i := range part.offers {
			o := &part.offers[i]
			if !testing && !o.stable {
				continue // (the first stable offer no newer than current ends the loop as well)
			}
			if CompareVersions(part.str(o.version), current) <= 0 {
				break // the rest are older still
			}
			if o.plan != 0 {
				if plan := decodePlan(part.arena[o.plan-1:]); !plan.reaches(bucket, now().UnixMilli()) {
					continue
				}
			}
			if o.minVersion.n == 0 || CompareVersions(current, part.str(o.minVersion)) >= 0 {
				return part.offer(int32(i)), true
			}
		}
		if i, ok := part.rollbackFor(rollback, current); ok {
			return part.offer(i), true
		}
	}
	return offer{}, false
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
			var size int // the last batch's encoded offers: the guess for the next
			for raw := range work {
				out := make([]indexRelease, len(raw))
				var p productInfo
				// A batch's offers are encoded into one buffer, which the
				// assembly copies into each product's arena.
				buf := make([]byte, 0, size+size/8)
				ends := make([]int, len(raw))
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
						buf, r.enc = encodeOffer(buf, r)
					}
					ends[k] = len(buf)
					k++
				}
				size = len(buf)
				start := 0
				for i := range out[:k] {
					if out[i].enc.body > 0 {
						out[i].enc.data = buf[start:ends[i]:ends[i]]
					}
					start = ends[i]
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
	ix := ib.index()
	for _, part := range ix.parts {
		s.warnDropped(part)
	}
	return ix, nil
}

// warnDropped says which releases of a part its arena had no room for.
func (s *Service) warnDropped(part *productPart) {
	if part.dropped > 0 {
		s.log.Warn("registry: releases left out of the update index: the product's answers would pass 4 GiB",
			"product", part.product, "releases", part.dropped)
	}
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
