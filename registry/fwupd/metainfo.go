package fwupd

import (
	"encoding/xml"
	"regexp"
	"strconv"
	"strings"

	"github.com/afterlife-oss/afterlife/registry"
	"github.com/afterlife-oss/afterlife/registry/catalog"
)

// The AppStream component fwupd reads from a cabinet's metainfo.xml and,
// with the release's location and container checksums added, from the
// remote's metadata. Field names follow fwupd's metainfo documentation
// and what LVFS accepts.
type component struct {
	XMLName         xml.Name   `xml:"component"`
	Type            string     `xml:"type,attr"`
	ID              string     `xml:"id"`
	Name            string     `xml:"name"`
	Summary         string     `xml:"summary"`
	Description     paragraphs `xml:"description"`
	Provides        []firmware `xml:"provides>firmware"`
	URLs            []link     `xml:"url"`
	MetadataLicense string     `xml:"metadata_license"`
	DeveloperName   string     `xml:"developer_name"`
	Branch          string     `xml:"branch"`
	Releases        []release  `xml:"releases>release"`
	Custom          []value    `xml:"custom>value,omitempty"`
}

type paragraphs struct {
	P []string `xml:"p"`
}

type firmware struct {
	Type string `xml:"type,attr"`
	GUID string `xml:",chardata"`
}

type link struct {
	Type string `xml:"type,attr"`
	URL  string `xml:",chardata"`
}

type release struct {
	Version     string     `xml:"version,attr"`
	Date        string     `xml:"date,attr"`
	Urgency     string     `xml:"urgency,attr"`
	Location    string     `xml:"location,omitempty"`
	Checksums   []checksum `xml:"checksum"`
	Sizes       []size     `xml:"size,omitempty"`
	URLs        []link     `xml:"url"`
	Description paragraphs `xml:"description"`
}

type checksum struct {
	Type     string `xml:"type,attr"`
	Filename string `xml:"filename,attr,omitempty"`
	Target   string `xml:"target,attr"`
	Value    string `xml:",chardata"`
}

type size struct {
	Type  string `xml:"type,attr"`
	Value int64  `xml:",chardata"`
}

type value struct {
	Key   string `xml:"key,attr"`
	Value string `xml:",chardata"`
}

// components is the remote's metadata document, firmware.xml.
type components struct {
	XMLName    xml.Name    `xml:"components"`
	Origin     string      `xml:"origin,attr"`
	Version    string      `xml:"version,attr"`
	Components []component `xml:"component"`
}

// PayloadName is the firmware's name inside every cabinet.
const PayloadName = "firmware.bin"

// MetainfoName is the metainfo's name inside every cabinet.
const MetainfoName = "firmware.metainfo.xml"

// JcatName is the signatures' name inside every cabinet: a sha256 and a
// PKCS#7 signature of the payload and of the metainfo, as LVFS writes.
const JcatName = "firmware.jcat"

var (
	notID   = regexp.MustCompile(`[^a-z0-9]+`)
	triplet = regexp.MustCompile(`^\d+\.\d+\.\d+$`)
)

// AppstreamID is the component id of a product's firmware: reverse DNS
// with the product id, dashes made underscores.
func AppstreamID(product string) string {
	return "org.afterlife.community." + notID.ReplaceAllString(product, "_")
}

// metainfo is the component of one release of p as its cabinet carries
// it: no location, the payload's checksum.
func metainfo(p catalog.Product, r registry.Release, branch, productURL string, payloadSHA256 string) component {
	notes := []string{}
	for _, para := range strings.Split(strings.TrimSpace(r.Notes), "\n\n") {
		if para = strings.Join(strings.Fields(para), " "); para != "" {
			notes = append(notes, para)
		}
	}
	if len(notes) == 0 {
		notes = []string{"Community release " + r.Version + "."}
	}
	notes = append(notes, "Rebuilt bit for bit by "+strconv.Itoa(r.Agreeing)+" of "+strconv.Itoa(r.Total)+" independent builders of the afterlife build farm; the verdict and its signed attestations are linked from this release.")
	desc := []string{
		"Community firmware for the " + p.Model + ", whose vendor ended its support. It is built from the sources the vendor handed over, reproducibly, and published by an afterlife registry.",
	}
	if p.RiskNotes != "" {
		desc = append(desc, "Before installing: "+strings.Join(strings.Fields(p.RiskNotes), " "))
	}
	c := component{
		Type:            "firmware",
		ID:              AppstreamID(p.ID),
		Name:            p.Model,
		Summary:         "Community firmware for the " + p.Model,
		Description:     paragraphs{P: desc},
		MetadataLicense: "CC0-1.0",
		DeveloperName:   "afterlife community (" + p.Vendor + " device)",
		Branch:          branch,
		URLs:            []link{{Type: "homepage", URL: productURL}},
		Releases: []release{{
			Version: r.Version, Date: r.PublishedAt.UTC().Format("2006-01-02"), Urgency: "medium",
			Checksums:   []checksum{{Type: "sha256", Filename: PayloadName, Target: "content", Value: payloadSHA256}},
			URLs:        []link{{Type: "details", URL: r.VerdictURL}},
			Description: paragraphs{P: notes},
		}},
	}
	for _, g := range p.FwupdGUIDs {
		c.Provides = append(c.Provides, firmware{Type: "flashed", GUID: g})
	}
	if triplet.MatchString(r.Version) {
		c.Custom = []value{{Key: "LVFS::VersionFormat", Value: "triplet"}}
	}
	return c
}

func marshalXML(v any) ([]byte, error) {
	b, err := xml.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append([]byte(xml.Header), append(b, '\n')...), nil
}
