package mirror

import (
	"strings"

	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/mod/sumdb/tlog"
)

// parseTilePath reads a C2SP tile path (tile/<L>/<N>[.p/<W>]) as the
// tlog tile of height 8 it is.
func parseTilePath(p string) (tlog.Tile, error) {
	rest := strings.TrimPrefix(p, "tile/")
	level, index, _ := strings.Cut(rest, "/")
	l, n, w, err := layout.ParseTileLevelIndexPartial(level, index)
	if err != nil {
		return tlog.Tile{}, err
	}
	width := int(w)
	if width == 0 {
		width = 256
	}
	return tlog.Tile{H: 8, L: int(l), N: int64(n), W: width}, nil
}
