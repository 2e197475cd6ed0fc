// Package witness speaks the transparency-log witness protocols: it serves
// C2SP tlog-witness add-checkpoint (https://c2sp.org/tlog-witness) as a
// witness of a set of logs (which its owner may change: SetLogs), cosigning with C2SP tlog-cosignature
// cosignature/v1 (https://c2sp.org/tlog-cosignature); and, as a log, it
// submits the node's checkpoints to external witnesses under a policy and
// keeps their cosignatures (Submitter).
//
// A node witnesses its federation's members with its own Ed25519 key, so
// members cosign each other's checkpoints by the standard protocol and any
// other log or witness tool can talk to them.
//
// A cosignature vouches for a checkpoint's origin, size and root only: it
// says that, at its time, the witness had seen no tree of that log larger
// than this one and that it checked this one consistent with every earlier
// one it cosigned. Extension lines are signed but not vouched for, with one
// exception below.
//
// # The map line
//
// An intermesh checkpoint may end with the extension line
// "map <base64 root>", the root of the log's verifiable map over exactly the
// checkpoint's records. The witness reads that line strictly (readMap: a
// line whose keyword is "map" is the last line, appears once, and carries
// the canonical standard base64 of 32 bytes, or the request is a 400) and
// never cosigns two map roots for one size of a log:
//
//   - at the size it last cosigned, it cosigns again (a later round of the
//     same tree, whose round, time and prev lines differ) only with the same
//     map line, or without one if it had none;
//   - at a larger size the map root is free (it changes with the records),
//     but once the latest checkpoint it cosigned had a map line, every later
//     one needs one: a map that disappears is refused.
//
// Either refusal is the protocol's conflict answer, 409 with the size it
// last cosigned (the same answer as for another root at that size), and
// changes nothing stored; the reason is logged.
//
// The witness remembers the map root of the latest cosigned size only. That
// is enough: it cosigns no size below the latest (a request's old size must
// be the latest, and not above the checkpoint's size), so the only size at
// which it could be asked to cosign a second map root is the latest one, and
// a size it moves past can never be asked again.
//
// # Storage
//
// The witness keeps, per witnessed origin, the size, root and map root (if
// the checkpoint had a map line) of the latest checkpoint it cosigned, in
// the node's Badger database under keys whose first byte is 'w' (no other
// package uses it):
//
//	'w' 'l' <origin>   size (8 bytes, big-endian) || root (32 bytes) [|| map root (32 bytes)]
//
// so the value is 40 bytes when the latest cosigned checkpoint had no map
// line and 72 when it had one. State written before the witness read map
// lines is 40 bytes and reads as "no map known": the next checkpoint of that
// size or larger is cosigned with or without a map line, and its map root is
// remembered from then on.
//
// A check of a request's old size and the write of the new state happen
// under one lock and one synced transaction, before the answer.
package witness

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/internal/keyspace"
)

// KeyPrefix is the first byte of every Badger key the witness writes; the
// list of every prefix of the store is in internal/keyspace.
const KeyPrefix = keyspace.Witness

// maxRequest bounds an add-checkpoint request body: an old-size line, 63
// proof lines and a checkpoint with a few signatures.
const maxRequest = 16 << 10

// maxProof is the most consistency proof lines a request may carry.
const maxProof = 63

// Witness answers add-checkpoint for the logs it trusts.
type Witness struct {
	db      *badger.DB
	signer  *Cosigner
	logs    atomic.Pointer[map[string]note.Verifier] // origin → the log's key (SetLogs replaces it)
	logger  *slog.Logger
	mu      sync.Mutex // serializes check-and-persist
	metrics func(status int)
}

// Config says what a Witness witnesses.
type Config struct {
	// DB holds the witness state (required).
	DB *badger.DB
	// Cosigner signs the cosignatures (required).
	Cosigner *Cosigner
	// Logs are the verifier keys of the logs witnessed, one per origin
	// (the key name is the origin).
	Logs []note.Verifier
	// Logger logs store failures. Optional.
	Logger *slog.Logger
	// Observe, if set, is called with the status of every answer.
	Observe func(status int)
}

// New returns a witness for cfg.
func New(cfg Config) (*Witness, error) {
	if cfg.DB == nil || cfg.Cosigner == nil {
		return nil, errors.New("witness: Config.DB and Config.Cosigner are required")
	}
	w := &Witness{db: cfg.DB, signer: cfg.Cosigner, logger: cfg.Logger, metrics: cfg.Observe}
	if w.logger == nil {
		w.logger = slog.Default()
	}
	if err := w.SetLogs(cfg.Logs); err != nil {
		return nil, err
	}
	return w, nil
}

// SetLogs replaces the logs the witness witnesses (the verifier key of
// each, named by its origin): from then on it cosigns only theirs, and
// answers 404 for any other. The state it keeps of a log it no longer
// witnesses stays, so that it resumes from there if the log comes back.
// Safe to call while the witness serves.
func (w *Witness) SetLogs(logs []note.Verifier) error {
	m := make(map[string]note.Verifier, len(logs))
	for _, v := range logs {
		if _, dup := m[v.Name()]; dup {
			return fmt.Errorf("witness: two keys for log %q", v.Name())
		}
		m[v.Name()] = v
	}
	w.logs.Store(&m)
	return nil
}

// VerifierKey is the witness's cosignature/v1 verifier key.
func (w *Witness) VerifierKey() string { return w.signer.VerifierKey() }

// ServeHTTP answers POST add-checkpoint (the caller routes it).
func (w *Witness) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	status, body, contentType := w.addCheckpoint(r)
	if w.metrics != nil {
		w.metrics(status)
	}
	rw.Header().Set("Content-Type", contentType)
	rw.WriteHeader(status)
	_, _ = rw.Write(body)
}

// addCheckpoint runs one request and returns the answer.
func (w *Witness) addCheckpoint(r *http.Request) (int, []byte, string) {
	const text = "text/plain; charset=utf-8"
	fail := func(status int, format string, a ...any) (int, []byte, string) {
		return status, []byte(fmt.Sprintf(format, a...) + "\n"), text
	}
	if r.Method != http.MethodPost {
		return fail(http.StatusMethodNotAllowed, "add-checkpoint is a POST")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequest+1))
	if err != nil {
		return fail(http.StatusBadRequest, "reading the request: %v", err)
	}
	if len(body) > maxRequest {
		return fail(http.StatusRequestEntityTooLarge, "the request is over %d bytes", maxRequest)
	}
	req, err := parseRequest(body)
	if err != nil {
		return fail(http.StatusBadRequest, "%v", err)
	}
	v, ok := (*w.logs.Load())[req.origin]
	if !ok {
		return fail(http.StatusNotFound, "unknown log %q", req.origin)
	}
	n, err := note.Open(req.note, note.VerifierList(v))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		if errors.As(err, &unverified) || errors.As(err, &invalid) {
			return fail(http.StatusForbidden, "the checkpoint carries no valid signature by %s's key", req.origin)
		}
		return fail(http.StatusBadRequest, "the checkpoint is not a signed note: %v", err)
	}
	cp, err := parseCheckpoint([]byte(n.Text))
	if err != nil {
		return fail(http.StatusBadRequest, "%v", err)
	}
	if cp.origin != req.origin {
		return fail(http.StatusBadRequest, "the note's origin line is not %q", req.origin)
	}
	if req.old > cp.size {
		return fail(http.StatusBadRequest, "old size %d is larger than the checkpoint's size %d", req.old, cp.size)
	}
	mapRoot, err := readMap([]byte(n.Text))
	if err != nil {
		return fail(http.StatusBadRequest, "%v", err)
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	known, err := w.load(cp.origin)
	if err != nil {
		w.logger.Error("witness: reading state", "origin", cp.origin, "err", err)
		return fail(http.StatusInternalServerError, "cannot read the witness state")
	}
	conflict := func() (int, []byte, string) {
		return http.StatusConflict, []byte(strconv.FormatUint(known.size, 10) + "\n"), "text/x.tlog.size"
	}
	if req.old != known.size || (req.old == cp.size && cp.root != known.root) {
		return conflict()
	}
	if why := mapConflict(known, cp.size, mapRoot); why != "" {
		w.logger.Warn("witness: refusing a checkpoint whose map line conflicts with the one cosigned", "origin", cp.origin, "size", cp.size, "cosigned_size", known.size, "why", why)
		return conflict()
	}
	if err := verifyConsistency(req.old, cp, known.root, req.proof); err != nil {
		return fail(http.StatusUnprocessableEntity, "%v", err)
	}
	if err := w.store(cp, mapRoot); err != nil {
		w.logger.Error("witness: persisting state", "origin", cp.origin, "err", err)
		return fail(http.StatusInternalServerError, "cannot persist the witness state")
	}
	signed, err := note.Sign(&note.Note{Text: n.Text}, w.signer)
	if err != nil {
		return fail(http.StatusInternalServerError, "cannot cosign: %v", err)
	}
	return http.StatusOK, signatureLines(signed), text
}

// verifyConsistency checks an add-checkpoint's consistency proof from the
// known tree (old size, known root) to cp.
func verifyConsistency(old uint64, cp checkpoint, knownRoot [32]byte, p [][]byte) error {
	switch {
	case old == 0 && len(p) != 0:
		return errors.New("the consistency proof from size 0 must be empty")
	case old == 0:
		return nil
	case old == cp.size && len(p) != 0:
		return errors.New("the consistency proof between equal sizes must be empty")
	case old == cp.size:
		return nil
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, old, cp.size, p, knownRoot[:], cp.root[:]); err != nil {
		return fmt.Errorf("the consistency proof from size %d to %d does not verify: %w", old, cp.size, err)
	}
	return nil
}

// signatureLines returns the signature lines of a signed note.
func signatureLines(signed []byte) []byte {
	i := bytes.LastIndex(signed, []byte("\n\n"))
	return signed[i+2:]
}

// request is a parsed add-checkpoint body.
type request struct {
	old    uint64
	proof  [][]byte
	origin string
	note   []byte
}

// parseRequest parses "old N\n", up to 63 base64 hash lines, "\n", then a
// signed checkpoint note.
func parseRequest(body []byte) (request, error) {
	head, rest, ok := bytes.Cut(body, []byte("\n\n"))
	if !ok {
		return request{}, errors.New("no blank line after the old size and proof")
	}
	lines := strings.Split(string(head), "\n")
	size, ok := strings.CutPrefix(lines[0], "old ")
	n, err := strconv.ParseUint(size, 10, 64)
	if !ok || err != nil || strconv.FormatUint(n, 10) != size {
		return request{}, errors.New(`the first line is not "old <size>" in canonical decimal`)
	}
	req := request{old: n, note: rest}
	if len(lines)-1 > maxProof {
		return request{}, fmt.Errorf("%d proof lines, at most %d", len(lines)-1, maxProof)
	}
	for i, l := range lines[1:] {
		h, err := base64.StdEncoding.DecodeString(l)
		if err != nil || len(h) != 32 {
			return request{}, fmt.Errorf("proof line %d is not the base64 of a 32-byte hash", i+1)
		}
		req.proof = append(req.proof, h)
	}
	req.origin, _, _ = strings.Cut(string(rest), "\n")
	return req, nil
}

// treeState is the latest cosigned size, root and map root of a log.
type treeState struct {
	size uint64
	root [32]byte
	// mapRoot is the map root of the checkpoint cosigned at size, nil if it
	// had no map line or the state predates map lines.
	mapRoot []byte
}

// mapConflict says why a checkpoint of size with map root m (nil: no map
// line) must not be cosigned after known, or "" if its map line is fine. The
// caller has checked size >= known.size.
func mapConflict(known treeState, size uint64, m []byte) string {
	switch {
	case known.mapRoot == nil:
		return "" // no map known: any map line, or none
	case m == nil && size == known.size:
		return "no map line, where the checkpoint cosigned at this size had one"
	case m == nil:
		return "no map line, where the latest checkpoint cosigned had one"
	case size == known.size && !bytes.Equal(m, known.mapRoot):
		return "another map root at the size cosigned"
	}
	return ""
}

// readMap returns the map root of a checkpoint note text's map line, nil if
// it has none. Any extension line whose keyword is "map" (the line is "map"
// or starts with "map" then a space or control character) is a map line; it
// must be the last line, appear once, and be "map " and the canonical
// standard base64 of 32 bytes, exactly as merkle.ParseCheckpoint reads it.
func readMap(text []byte) ([]byte, error) {
	lines := strings.Split(strings.TrimSuffix(string(text), "\n"), "\n")
	if len(lines) < 3 {
		return nil, errors.New("witness: malformed checkpoint: fewer than 3 lines")
	}
	ext := lines[3:]
	var m []byte
	for i, l := range ext {
		if !isMapLine(l) {
			continue
		}
		if i != len(ext)-1 {
			return nil, fmt.Errorf("witness: malformed checkpoint: line %d: a map line that is not the last line", 4+i)
		}
		v, _ := strings.CutPrefix(l, "map ")
		b, err := base64.StdEncoding.Strict().DecodeString(v)
		if err != nil || len(b) != 32 || base64.StdEncoding.EncodeToString(b) != v || !strings.HasPrefix(l, "map ") {
			return nil, fmt.Errorf("witness: malformed checkpoint: line %d: not \"map <canonical standard base64 of 32 bytes>\"", 4+i)
		}
		m = b
	}
	return m, nil
}

// isMapLine reports whether an extension line's keyword is "map".
func isMapLine(l string) bool {
	rest, ok := strings.CutPrefix(l, "map")
	if !ok {
		return false
	}
	if rest == "" {
		return true
	}
	r, _ := utf8.DecodeRuneInString(rest)
	return unicode.IsSpace(r) || unicode.IsControl(r)
}

func stateKey(origin string) []byte { return append([]byte{KeyPrefix, 'l'}, origin...) }

// load reads the state of origin; size 0 and the empty tree's root if it
// was never cosigned.
func (w *Witness) load(origin string) (treeState, error) {
	var st treeState
	err := w.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(stateKey(origin))
		if errors.Is(err, badger.ErrKeyNotFound) {
			// Nothing cosigned yet: the witness knows the empty tree.
			copy(st.root[:], rfc6962.DefaultHasher.EmptyRoot())
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if len(v) != 40 && len(v) != 72 {
				return fmt.Errorf("witness: state of %q is %d bytes", origin, len(v))
			}
			st.size = binary.BigEndian.Uint64(v)
			copy(st.root[:], v[8:40])
			if len(v) == 72 {
				st.mapRoot = bytes.Clone(v[40:])
			}
			return nil
		})
	})
	return st, err
}

// store persists cp, whose map root is mapRoot (nil: no map line), as the
// latest cosigned state of its origin.
func (w *Witness) store(cp checkpoint, mapRoot []byte) error {
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 72), cp.size)
	v = append(v, cp.root[:]...)
	v = append(v, mapRoot...)
	return w.db.Update(func(txn *badger.Txn) error { return txn.Set(stateKey(cp.origin), v) })
}
