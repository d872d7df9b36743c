// Package atom writes Atom feeds (RFC 4287): just what afterlife's feeds
// need (a feed with a self link, entries with a link and a summary). It
// reads nothing and knows no part.
package atom

import (
	"encoding/xml"
	"time"
)

// Feed is an Atom feed.
type Feed struct {
	XMLName xml.Name `xml:"http://www.w3.org/2005/Atom feed"`
	ID      string   `xml:"id"`
	Title   string   `xml:"title"`
	Updated string   `xml:"updated"`
	Links   []Link   `xml:"link"`
	Author  Person   `xml:"author"`
	Entries []Entry  `xml:"entry"`
}

// Link is an Atom link.
type Link struct {
	Rel  string `xml:"rel,attr,omitempty"`
	Href string `xml:"href,attr"`
	Type string `xml:"type,attr,omitempty"`
}

// Person is an Atom author.
type Person struct {
	Name string `xml:"name"`
}

// Entry is one Atom entry.
type Entry struct {
	ID      string `xml:"id"`
	Title   string `xml:"title"`
	Updated string `xml:"updated"`
	Links   []Link `xml:"link"`
	Summary string `xml:"summary"`
}

// Time is t as Atom writes dates.
func Time(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// Marshal is the feed as an XML document.
func Marshal(f Feed) ([]byte, error) {
	out, err := xml.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	return append([]byte(xml.Header), out...), nil
}
