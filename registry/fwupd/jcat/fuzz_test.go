package jcat_test

import (
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/registry/fwupd/jcat"
)

// FuzzParse: a Jcat file from anywhere (a mirror, a proxy) never panics the
// reader, and what it reads writes back to a file it reads again.
func FuzzParse(f *testing.F) {
	good := jcat.New()
	good.Items = append(good.Items, jcat.Item{ID: "firmware.xml.zst", Blobs: []jcat.Blob{jcat.Checksum([]byte("x"), time.Unix(1, 0))}})
	b, _ := good.Marshal()
	f.Add(b)
	f.Add([]byte{0x1f, 0x8b, 0x08, 0x00})
	f.Add([]byte("{}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := jcat.Parse(b)
		if err != nil {
			return
		}
		again, err := file.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := jcat.Parse(again); err != nil {
			t.Fatalf("a file Parse read does not read back: %v", err)
		}
	})
}
