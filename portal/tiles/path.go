package tiles

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrBadPath reports a request path that is not a tlog-tiles resource.
var ErrBadPath = errors.New("tiles: not a tlog-tiles path")

// Tile names one resource of a tlog-tiles log: a hash tile, or (Entries) an
// entry bundle.
type Tile struct {
	// Entries says the resource is the entry bundle of level-0 tile Index.
	Entries bool
	// Level is the tile's level (0 for entry bundles).
	Level uint
	// Index is the tile's index within its level.
	Index uint64
	// Width is the number of hashes (or entries): 256 for a full tile.
	Width int
}

// Path returns the tile's path below a log's prefix, as C2SP tlog-tiles
// writes it: "tile/<L>/<N>[.p/<W>]" or "tile/entries/<N>[.p/<W>]", where
// <N> is written in 3-digit groups, all but the last prefixed with "x"
// (index 1234067 is "x001/x234/067"), and ".p/<W>" is present only for a
// partial tile (width below 256).
func (t Tile) Path() string {
	var b strings.Builder
	b.WriteString("tile/")
	if t.Entries {
		b.WriteString("entries/")
	} else {
		b.WriteString(strconv.FormatUint(uint64(t.Level), 10) + "/")
	}
	b.WriteString(encodeIndex(t.Index))
	if t.Width < tileWidth {
		b.WriteString(".p/" + strconv.Itoa(t.Width))
	}
	return b.String()
}

// encodeIndex writes n as zero-padded 3-digit path elements, all but the
// last prefixed with "x".
func encodeIndex(n uint64) string {
	groups := []string{fmt.Sprintf("%03d", n%1000)}
	for n /= 1000; n > 0; n /= 1000 {
		groups = append(groups, fmt.Sprintf("x%03d", n%1000))
	}
	var b strings.Builder
	for i := len(groups) - 1; i >= 0; i-- {
		b.WriteString(groups[i])
		if i > 0 {
			b.WriteByte('/')
		}
	}
	return b.String()
}

// maxPathLen bounds a tile path: "tile/entries/" and seven index groups and
// a ".p/255" suffix fit well within it.
const maxPathLen = 64

// ParsePath parses a tile path (see Tile.Path), accepting only the canonical
// form: a level of 0 to 63 without leading zeros, an index in canonical
// groups (no leading "x000" group), a width of 1 to 255 without leading zeros.
func ParsePath(path string) (Tile, error) {
	bad := func(why string) (Tile, error) {
		return Tile{}, fmt.Errorf("%w: %q: %s", ErrBadPath, path, why)
	}
	if len(path) > maxPathLen {
		return bad("too long")
	}
	rest, ok := strings.CutPrefix(path, "tile/")
	if !ok {
		return bad(`does not start with "tile/"`)
	}
	var t Tile
	level, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return bad("no index")
	}
	if level == "entries" {
		t.Entries = true
	} else {
		l, err := canonicalDecimal(level, 63)
		if err != nil {
			return bad("level: " + err.Error())
		}
		t.Level = uint(l)
	}
	index, width, partial := strings.Cut(rest, ".p/")
	t.Width = tileWidth
	if partial {
		w, err := canonicalDecimal(width, tileWidth-1)
		if err != nil || w == 0 {
			return bad("width must be 1 to 255 without leading zeros")
		}
		t.Width = int(w)
	}
	n, err := decodeIndex(index)
	if err != nil {
		return bad("index: " + err.Error())
	}
	t.Index = n
	return t, nil
}

// decodeIndex parses the canonical index encoding.
func decodeIndex(s string) (uint64, error) {
	groups := strings.Split(s, "/")
	if len(groups) > 7 {
		return 0, errors.New("too many groups")
	}
	var n uint64
	for i, g := range groups {
		last := i == len(groups)-1
		if !last {
			var ok bool
			if g, ok = strings.CutPrefix(g, "x"); !ok {
				return 0, errors.New(`every group but the last starts with "x"`)
			}
		}
		if len(g) != 3 || strings.Trim(g, "0123456789") != "" {
			return 0, errors.New("groups are 3 decimal digits")
		}
		v, _ := strconv.ParseUint(g, 10, 64)
		if i == 0 && !last && v == 0 {
			return 0, errors.New("leading zero group")
		}
		if n > (^uint64(0)-v)/1000 {
			return 0, errors.New("over 64 bits")
		}
		n = n*1000 + v
	}
	return n, nil
}

// canonicalDecimal parses a decimal without leading zeros, at most max.
func canonicalDecimal(s string, max uint64) (uint64, error) {
	if s == "" || len(s) > 3 || (len(s) > 1 && s[0] == '0') || strings.Trim(s, "0123456789") != "" {
		return 0, errors.New("not a canonical decimal")
	}
	v, _ := strconv.ParseUint(s, 10, 64)
	if v > max {
		return 0, fmt.Errorf("%d is over %d", v, max)
	}
	return v, nil
}
