package portal

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/intermesh/intermesh/log"
)

// cursor is the content of the PageKey of Get, ConnectPending and
// ListMessages: the query and where the next page starts. It is opaque to
// clients: the unpadded base64url of its JSON followed by the first 16
// bytes of HMAC-SHA256(page-key secret, JSON). The secret is the node's own
// (Config.PageKeySecret), so a client can neither forge a key nor edit one,
// e.g. to move a ConnectPending page key to another account.
type cursor struct {
	Tx        string    `json:"t"`
	Name      string    `json:"n"`           // identifier (Get) or account (ConnectPending, ListMessages)
	Origin    string    `json:"o,omitempty"` // the replica the versions come from (Get); "" for the own log
	Next      uint64    `json:"s"`           // first sequence number of the next page
	NotBefore time.Time `json:"nb,omitzero"`
	Before    time.Time `json:"b,omitzero"`
	// Latest marks the search of a Get without Multiple for the latest
	// version inside the window; Found is 1 + the sequence number of the
	// latest one it found so far, 0 for none.
	Latest bool   `json:"l,omitempty"`
	Found  uint64 `json:"f,omitempty"`
}

// pageKeyMACSize is the length of a page key's MAC.
const pageKeyMACSize = 16

func (s *Server) pageKeyMAC(b []byte) []byte {
	m := hmac.New(sha256.New, s.pageSecret)
	m.Write(b)
	return m.Sum(nil)[:pageKeyMACSize]
}

func (s *Server) encodeCursor(c cursor) string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(append(b, s.pageKeyMAC(b)...))
}

func (s *Server) decodeCursor(field, tx, key string) (cursor, error) {
	var c cursor
	b, err := base64.RawURLEncoding.DecodeString(key)
	// The decoder skips CR and LF, so only the canonical spelling of the
	// bytes is the key that was issued.
	if err == nil && len(b) > pageKeyMACSize && base64.RawURLEncoding.EncodeToString(b) == key {
		body, mac := b[:len(b)-pageKeyMACSize], b[len(b)-pageKeyMACSize:]
		if hmac.Equal(mac, s.pageKeyMAC(body)) && json.Unmarshal(body, &c) == nil && c.Tx == tx {
			return c, nil
		}
	}
	return cursor{}, Errorf(ClientBadRequest, "%s.PageKey is not a page key this portal issued for %s", field, tx)
}

// bounds are the effective limits of one page.
type bounds struct {
	entries, bytes int
}

// pageBounds checks SearchConstraints and applies the server's limits.
func (s *Server) pageBounds(field string, sc *SearchConstraints) (bounds, error) {
	b := bounds{entries: s.cfg.MaxPageEntries, bytes: s.cfg.MaxPageBytes}
	if sc == nil {
		return b, nil
	}
	if sc.MaxEntries < 0 || sc.MaxBytes < 0 {
		return b, Errorf(ClientBadRequest, "%s.SearchConstraints: MaxEntries and MaxBytes must not be negative", field)
	}
	if sc.NotBefore != nil && sc.Before != nil && !sc.NotBefore.Before(*sc.Before) {
		return b, Errorf(ClientBadRequest, "%s.SearchConstraints: NotBefore must be earlier than Before", field)
	}
	if sc.MaxEntries > 0 {
		b.entries = min(b.entries, sc.MaxEntries)
	}
	if sc.MaxBytes > 0 {
		b.bytes = min(b.bytes, sc.MaxBytes)
	}
	return b, nil
}

// timeWindow returns the NotBefore and Before of constraints (zero: unbounded).
func timeWindow(sc *SearchConstraints) (notBefore, before time.Time) {
	if sc == nil {
		return
	}
	if sc.NotBefore != nil {
		notBefore = *sc.NotBefore
	}
	if sc.Before != nil {
		before = *sc.Before
	}
	return
}

func inWindow(t, notBefore, before time.Time) bool {
	return (notBefore.IsZero() || !t.Before(notBefore)) && (before.IsZero() || t.Before(before))
}

// source is where an index's records are read: the node's own log and
// local state, or the replica of one peer origin and its replicated state.
type source struct {
	// origin is the replica's origin, "" for the node's own log.
	origin string
	// seqs lists the sequence numbers the index holds for name.
	seqs func(name string, from uint64, limit int) ([]uint64, bool, error)
	// get reads a record.
	get func(seq uint64) (log.Record, error)
}

// localSource reads the index tag of the local state and the node's log.
func (s *Server) localSource(tag byte) source {
	return source{
		seqs: func(name string, from uint64, limit int) ([]uint64, bool, error) {
			return s.state.seqs(tag, name, from, limit)
		},
		get: s.log.Get,
	}
}

// MaxPageExamined bounds the records one page of Get, ConnectPending or
// ListMessages reads from its index: those it returns and those it skips
// (outside the request's time window) count alike, so a narrow window
// cannot make one request walk a whole index. A page that has examined
// MaxPageExamined records ends there, with what it found (possibly
// nothing) and a PageKey that continues after the last record it
// examined: a client follows PageKeys until there is none, whether or not
// a page held entries. A Get without Multiple whose window excludes the
// latest version searches the history under the same bound, and answers
// with no entry and a PageKey when the search is not done.
const MaxPageExamined = 1024

// collect walks the sequence numbers an index lists from c.Next on, reading
// each record and keeping those inside c's time window, until a bound is
// reached: b's entries or bytes, or MaxPageExamined records examined. It
// returns the records and the cursor of the next page ("" if none).
func (s *Server) collect(src source, c cursor, b bounds, size func(*log.Record) int) ([]log.Record, string, error) {
	recs, next, _, err := s.walk(src, c, b, MaxPageExamined, size)
	if err != nil || next == nil {
		return recs, "", err
	}
	return recs, s.encodeCursor(*next), nil
}

// walk is collect examining at most budget records, the ones it skips
// included. It returns the records, the cursor of the rest (nil if none)
// and how many records it examined.
func (s *Server) walk(src source, c cursor, b bounds, budget int, size func(*log.Record) int) ([]log.Record, *cursor, int, error) {
	var recs []log.Record
	used, examined := 0, 0
	for {
		seqs, more, err := src.seqs(c.Name, c.Next, min(b.entries, budget-examined)+1)
		if err != nil {
			return nil, nil, examined, err
		}
		for _, seq := range seqs {
			if examined == budget {
				c.Next = seq
				return recs, &c, examined, nil
			}
			examined++
			rec, err := src.get(seq)
			if err != nil {
				return nil, nil, examined, err
			}
			if !inWindow(rec.Time, c.NotBefore, c.Before) {
				c.Next = seq + 1
				continue
			}
			n := size(&rec)
			if len(recs) == b.entries || (len(recs) > 0 && used+n > b.bytes) {
				c.Next = seq
				return recs, &c, examined, nil
			}
			recs, used, c.Next = append(recs, rec), used+n, seq+1
		}
		if !more {
			return recs, nil, examined, nil
		}
	}
}
