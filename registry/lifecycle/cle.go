package lifecycle

import (
	"sort"
	"time"
)

// CLE event types (ECMA-428) and afterlife's own, which CLE leaves to
// future work as third-party claims.
const (
	Released              = "released"
	EndOfMarketing        = "endOfMarketing"
	EndOfSupport          = "endOfSupport"
	EndOfLife             = "endOfLife"
	SupersededBy          = "supersededBy"
	HandedOver            = "handedOver"
	FirstCommunityRelease = "firstCommunityRelease"
)

// Claimants: who says an event happened.
const (
	ByVendor     = "vendor"
	ByThirdParty = "third-party"
)

// SecuritySupport is the id of the support definition endOfSupport names.
const SecuritySupport = "security"

// AllVersions is the VERS range of every version of the vendor's firmware.
const AllVersions = "vers:generic/*"

// VendorFirmware is the version the vendor's general availability is
// recorded under: the registry knows the product, not the vendor's own
// version numbers.
const VendorFirmware = "vendor"

// Claimant says who claims an event: the vendor, or this registry as a
// third party.
type Claimant struct {
	Role string `json:"role"` // vendor or third-party
	Name string `json:"name"`
}

// Versions is a CLE versions entry: one version or a VERS range.
type Versions struct {
	Version string `json:"version,omitempty"`
	Range   string `json:"range,omitempty"`
}

// Event is one CLE event.
type Event struct {
	Type                string     `json:"type"`
	Effective           string     `json:"effective"`
	Published           string     `json:"published"`
	Modified            string     `json:"modified"`
	Version             string     `json:"version,omitempty"`
	Versions            []Versions `json:"versions,omitempty"`
	SupportID           string     `json:"supportId,omitempty"`
	SupersededByVersion string     `json:"supersededByVersion,omitempty"`
	Claimant            Claimant   `json:"claimant"`
}

// SupportDefinition is a CLE support definition.
type SupportDefinition struct {
	ID          string `json:"id"`
	Description string `json:"description"`
}

// CLEDocument is the served event stream.
type CLEDocument struct {
	Schema      string `json:"$schema"`
	Product     string `json:"product"`
	Definitions struct {
		Support []SupportDefinition `json:"support"`
	} `json:"definitions"`
	Events []Event `json:"events"`
}

var typeOrder = map[string]int{Released: 0, FirstCommunityRelease: 1, SupersededBy: 2, EndOfMarketing: 3, EndOfSupport: 4, EndOfLife: 5, HandedOver: 6}

// CLE writes the lifecycle event stream: the vendor's declared dates
// (general availability as released, end of sales as endOfMarketing, end
// of security support as endOfSupport, end of life as endOfLife; TBA and
// undeclared dates have no event yet), then this registry's own claims:
// handed over, its community releases, the first of them, and each stable
// release superseding the one before. Events are in chronological order
// of effective; ties keep the order above.
func CLE(f Facts) ([]byte, error) {
	doc := CLEDocument{Schema: CLESchema, Product: f.Product.ID, Events: []Event{}}
	doc.Definitions.Support = []SupportDefinition{{ID: SecuritySupport, Description: "security fixes by the vendor"}}
	vendor := Claimant{Role: ByVendor, Name: f.Product.Vendor}
	registry := Claimant{Role: ByThirdParty, Name: f.Registry}
	all := []Versions{{Range: AllVersions}}
	declared := func(typ string, d Date, e Event) {
		t, err := time.Parse(time.RFC3339, d.Value)
		if err != nil {
			return
		}
		e.Type, e.Effective, e.Published, e.Modified, e.Claimant = typ, stamp(t), stamp(d.Published), stamp(d.Modified), vendor
		doc.Events = append(doc.Events, e)
	}
	declared(Released, f.GeneralAvailability, Event{Version: VendorFirmware})
	declared(EndOfMarketing, f.EndOfSales, Event{Versions: all})
	declared(EndOfSupport, f.EndOfSecuritySupport, Event{Versions: all, SupportID: SecuritySupport})
	declared(EndOfLife, f.EndOfLife, Event{Versions: all})
	ours := func(typ string, at time.Time, e Event) {
		e.Type, e.Effective, e.Published, e.Modified, e.Claimant = typ, stamp(at), stamp(at), stamp(at), registry
		doc.Events = append(doc.Events, e)
	}
	if !f.HandedOver.IsZero() {
		ours(HandedOver, f.HandedOver, Event{})
	}
	rels := append([]Release{}, f.Releases...)
	sort.SliceStable(rels, func(i, j int) bool {
		if !rels[i].Published.Equal(rels[j].Published) {
			return rels[i].Published.Before(rels[j].Published)
		}
		return rels[i].Version < rels[j].Version
	})
	var lastStable string
	for i, r := range rels {
		if i == 0 {
			ours(FirstCommunityRelease, r.Published, Event{Version: r.Version})
		}
		ours(Released, r.Published, Event{Version: r.Version})
		if r.Channel == "stable" {
			if lastStable != "" && lastStable != r.Version {
				ours(SupersededBy, r.Published, Event{Versions: []Versions{{Version: lastStable}}, SupersededByVersion: r.Version})
			}
			lastStable = r.Version
		}
	}
	sort.SliceStable(doc.Events, func(i, j int) bool {
		a, b := doc.Events[i], doc.Events[j]
		if a.Effective != b.Effective {
			return a.Effective < b.Effective // RFC 3339 UTC with Z sorts as time
		}
		return typeOrder[a.Type] < typeOrder[b.Type]
	})
	return marshal(doc)
}
