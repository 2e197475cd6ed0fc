package portal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// The messages of the Mesh Portal Protocol (seed 001 §7, seed 004 §3), shared
// by the server and the Go client. Field names are the drafts'. On the wire a
// request is {"<Name>Request": {...}} (or wrapped once more in the transaction
// name, {"ValidateAccount": {"ValidateRequest": {...}}}) and a response is
// {"<Name>Response": {..., "Status": 201, "StatusDescription": "..."}}.

// MeshRequest is the base of every request.
type MeshRequest struct {
	// Portal names the portal the request is directed to. Optional.
	Portal string `json:",omitempty"`
}

// MeshResponse is the base of every response: the status and its description.
type MeshResponse struct {
	// Status is the protocol status code (SuccessOK, NotFound, ...).
	Status int
	// StatusDescription says what happened, and for an error, what was wrong.
	StatusDescription string `json:",omitempty"`
}

// Response returns the MeshResponse itself; every response embeds one, so
// every response type has this method.
func (r *MeshResponse) Response() *MeshResponse { return r }

// Entry is a Mesh object as it travels: a JSON object with one member whose
// name is the object's type and whose value is the object; for a signed
// object the value is a DARE envelope [header, payload, trailer]. For example
//
//	{"ProfileMesh":[{"dig":"SHA2"}, "eyJQcm9maWxlTWVzaCI6ey4uLn19", {"signatures":[...]}]}
//
// An Entry keeps the exact bytes it was decoded from.
type Entry []byte

// ErrNotEntry is returned (wrapped) when JSON is not an object with exactly
// one member.
var ErrNotEntry = errors.New("not a Mesh entry: want an object with one member naming its type")

// MarshalJSON implements json.Marshaler; a nil Entry is null.
func (e Entry) MarshalJSON() ([]byte, error) {
	if len(e) == 0 {
		return []byte("null"), nil
	}
	return e, nil
}

// UnmarshalJSON implements json.Unmarshaler, keeping a copy of the bytes.
func (e *Entry) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		*e = nil
		return nil
	}
	if _, err := EntryType(b); err != nil {
		return err
	}
	*e = append((*e)[:0], b...)
	return nil
}

// Type returns the name of the entry's one member, e.g. "ProfileMesh", or ""
// if the entry is malformed.
func (e Entry) Type() string {
	t, _ := EntryType(e)
	return t
}

// EntryType returns the name of the one member of a JSON object, checking that
// there is exactly one and that its value is an array or an object.
func EntryType(b []byte) (string, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return "", fmt.Errorf("%w, got JSON %s", ErrNotEntry, te.Value)
		}
		return "", fmt.Errorf("%w: %w", ErrNotEntry, err)
	}
	if len(m) != 1 {
		return "", fmt.Errorf("%w: it has %d members", ErrNotEntry, len(m))
	}
	for k, v := range m {
		v = bytes.TrimSpace(v)
		if k == "" || len(v) == 0 || (v[0] != '[' && v[0] != '{') {
			return "", fmt.Errorf("%w: member %q is not an object or an envelope", ErrNotEntry, k)
		}
		return k, nil
	}
	panic("unreachable")
}

// Version describes a protocol version (seed 001 §7.4.1).
type Version struct {
	Major     int        `json:",omitempty"`
	Minor     int        `json:",omitempty"`
	Encodings []Encoding `json:",omitempty"`
	URI       []string   `json:",omitempty"`
}

// Encoding describes a message content encoding (seed 001 §7.4.2).
type Encoding struct {
	ID         []string `json:",omitempty"`
	Dictionary []string `json:",omitempty"`
}

// KeyValue is a retrieval key and the value to match (seed 001 §7.4.3).
type KeyValue struct {
	Key   string `json:",omitempty"`
	Value string `json:",omitempty"`
}

// SearchConstraints limits a search (seed 001 §7.4.4). When PageKey is set,
// every other field but MaxEntries and MaxBytes is ignored and the search
// continues where the page that returned the key stopped. A PageKey is opaque.
type SearchConstraints struct {
	// NotBefore: only data published on or after this instant.
	NotBefore *time.Time `json:",omitempty"`
	// Before: only data published before this instant.
	Before *time.Time `json:",omitempty"`
	// MaxEntries is the most entries to return; 0 means the server's limit.
	MaxEntries int `json:",omitempty"`
	// MaxBytes is the most payload bytes to return; 0 means the server's limit.
	// At least one entry is returned even if it alone is larger.
	MaxBytes int `json:",omitempty"`
	// PageKey continues a previous search.
	PageKey string `json:",omitempty"`
}

// DataItem is one entry returned by Get or Transfer. Get fills Entry (and,
// when the request asks for Full, the log metadata); Transfer fills every
// field.
type DataItem struct {
	// Index is the record's sequence number in the log, i.e. its leaf index
	// in the Merkle tree.
	Index *uint64 `json:",omitempty"`
	// Time is when the log sequenced the record.
	Time *time.Time `json:",omitempty"`
	// Kind is the record kind: Account, Profile, Escrow, ConnectionRequest,
	// ConnectionResult, MasterHash, Evidence.
	Kind string `json:",omitempty"`
	// Identifier is the UDF of the object the record is about.
	Identifier string `json:",omitempty"`
	// Account is the account the record belongs to.
	Account string `json:",omitempty"`
	// Origin is the log name of the node that sequenced the record. Get
	// sets it for a replicated entry even without Full.
	Origin string `json:",omitempty"`
	// Replicated says that the entry comes from this portal's replica of
	// another portal's log (Origin), not from its own log: Index, Time and
	// Leaf are then those of the origin's log and tree.
	Replicated bool `json:",omitempty"`
	// Entry is the record's payload: the Mesh object (or portal entry).
	Entry json.RawMessage `json:",omitempty"`
	// Payload is the record's payload when it is not JSON.
	Payload []byte `json:",omitempty"`
	// Leaf is the leaf encoding of the record (log.Record.MarshalLeaf):
	// SHA-256(0x00 || Leaf) is its leaf hash in the tree. Standard base64.
	Leaf []byte `json:",omitempty"`
	// Inclusion (Get with Full) is the RFC 6962 inclusion proof of Leaf at
	// Index in the tree of GetResponse.Proof.Checkpoint; absent when the
	// entry is newer than that checkpoint.
	Inclusion [][]byte `json:",omitempty"`
}

// HelloRequest asks for the service's protocol versions.
type HelloRequest struct{ MeshRequest }

// HelloResponse reports the protocol versions the service speaks, its
// service name (which AccountProofs name), and the service's own signed
// ProfileService (seed 002 §4.3) if it has one.
type HelloResponse struct {
	MeshResponse
	Version    *Version  `json:",omitempty"`
	Alternates []Version `json:",omitempty"`
	// Service is the portal's service name (its Config.Service, e.g.
	// "example.com"): an AccountProof for this portal names it in Portal.
	Service                 string          `json:",omitempty"`
	EnvelopedProfileService json.RawMessage `json:",omitempty"`
}

// ValidateRequest asks whether an account name is acceptable.
type ValidateRequest struct {
	MeshRequest
	Account  string   `json:",omitempty"`
	Reserve  bool     `json:",omitempty"`
	Language []string `json:",omitempty"`
	// Full (this project) asks for the proof of what the portal's log
	// holds of the name (ValidateResponse.Proof).
	Full bool `json:",omitempty"`
}

// ValidateResponse says whether the account name is acceptable and what the
// rules are.
type ValidateResponse struct {
	MeshResponse
	Valid             bool
	Minimum           int    `json:",omitempty"`
	Maximum           int    `json:",omitempty"`
	InvalidCharacters string `json:",omitempty"`
	Reason            string `json:",omitempty"`
	// Proof (with Full, for a name this portal serves) is the lookup proof
	// of the account name in the map of the portal's log under its latest
	// checkpoint (GetProof.Map): a name no record set, or whose latest
	// Account record closed it, is free.
	Proof *GetProof `json:",omitempty"`
}

// CreateRequest asks for a new account bound to a signed profile (the
// account's ProfileAccount or ProfileMesh), with the profile's consent
// (this project): either the profile is a ProfileAccount whose
// AccountAddresses list Account, or Proof is an AccountProof entry
//
//	{"AccountProof":{"Portal":"example.com","Account":"alice@example.com",
//	  "Transaction":"CreateAccount","Signed":"2026-11-28T23:50:00Z",
//	  "Digest":"<SHA-512 of Profile's payload>"}}
//
// signed by the profile's offline key or one of its online keys (see
// SignAccountProof). The portal keeps the proof in the Account record.
type CreateRequest struct {
	MeshRequest
	Account string `json:",omitempty"`
	Profile Entry  `json:",omitempty"`
	Proof   Entry  `json:",omitempty"`
}

// CreateResponse reports the outcome of CreateAccount.
type CreateResponse struct {
	MeshResponse
	// Written (this project) is the record that the write appended: a
	// client remembers it and checks that the certified map reaches it
	// (meshctl monitor).
	Written *WrittenRecord `json:",omitempty"`
}

// WrittenRecord names the record a write appended.
type WrittenRecord struct {
	// Origin is the log the record is in.
	Origin string
	// Index is its index there.
	Index uint64
}

// DeleteRequest asks for an account to be deleted (seed 004 §3.8). The
// profile stays published. Proof (this project) is an envelope signed by the
// offline key or an online key of the account's profile whose payload is
// {"DeleteAccount":{"Account":"<account>"}}; without it, the operator's admin
// bearer token is required.
type DeleteRequest struct {
	MeshRequest
	Account string `json:",omitempty"`
	Proof   Entry  `json:",omitempty"`
}

// DeleteResponse reports the outcome of DeleteAccount.
type DeleteResponse struct{ MeshResponse }

// GetRequest looks up published entries by profile identifier or account.
type GetRequest struct {
	MeshRequest
	Identifier        string             `json:",omitempty"`
	Account           string             `json:",omitempty"`
	KeyValues         []KeyValue         `json:",omitempty"`
	SearchConstraints *SearchConstraints `json:",omitempty"`
	// Multiple asks for every version, oldest first, not only the latest.
	Multiple bool `json:",omitempty"`
	// Full asks for the log metadata (index, time, leaf) with each entry.
	Full bool `json:",omitempty"`
	// Round (this project; with Full) asks for the proofs under the
	// entries' log's checkpoint of that round, one of the last few (such
	// as the round of a certificate the client holds), rather than its
	// latest.
	Round uint64 `json:",omitempty"`
	// Origin (this project; with an Identifier) asks for the latest
	// version and the proofs from the log of that member only: the
	// node's own log if it is its own origin, else its replica of that
	// origin's log, proved under the origin's checkpoint its replica
	// verified and the node's recomputation of the origin's map. A
	// client asks every member's origin in turn to prove an identifier
	// in every member's map under one certificate (docs/formats.md,
	// "Get proofs"). An origin the node holds no replica of is a
	// ClientBadRequest.
	Origin string `json:",omitempty"`
}

// GetResponse carries the entries found.
type GetResponse struct {
	MeshResponse
	DataItems []DataItem `json:",omitempty"`
	PageKey   string     `json:",omitempty"`
	// Proof (with Full) lets a client check the entries offline against
	// the log they are in and the federation's latest certificate.
	Proof *GetProof `json:",omitempty"`
}

// GetProof is what Get with Full proves about its entries.
type GetProof struct {
	// Checkpoint is the latest signed checkpoint of the log the entries
	// are in (the node's own, or for replicated entries the latest
	// checkpoint of their origin that the node's replica verified).
	// Each DataItem's Inclusion ends in it.
	Checkpoint string `json:",omitempty"`
	// Certificate proves that the federation certified that log, if the
	// node holds a certificate yet.
	Certificate *CertificateProof `json:",omitempty"`
	// Map are the lookup proofs, under Checkpoint's map line, of the names
	// the answer is about (docs/formats.md, "Map lookup proofs"): each
	// shows the name's latest record, version count and history, or that
	// no record of the log set it. A Get by Identifier proves it as a
	// profile and as an escrow identifier; by Account, the account and
	// the profile it is bound to.
	Map []MapProof `json:",omitempty"`
	// Account is, for a Get by Account of the node's own log, the
	// account's latest Account record (it opened or closed the account),
	// with its leaf and its inclusion proof in Checkpoint: the record the
	// account's map value names.
	Account *DataItem `json:",omitempty"`
	// Predecessors are, when the latest version a Get without Multiple
	// serves is a profile signed by one of its online keys, the records
	// before it in the profile key's history, oldest first: back to the
	// latest one signed by the profile's offline key, at most
	// MaxPredecessors, each with its leaf and its inclusion proof in
	// Checkpoint (docs/formats.md, "Predecessors of an online-signed
	// version"). A client checks that each version is signed by the
	// offline key or by an online key its predecessor lists.
	Predecessors []DataItem `json:",omitempty"`
	// HistoryBefore is the history value C_(j-1) of the profile key before
	// the oldest of Predecessors (32 zero bytes when that is the first
	// version): from it, Predecessors and the latest version, the client
	// recomputes the history value the map proves.
	HistoryBefore []byte `json:",omitempty"`
}

// MaxPredecessors bounds GetProof.Predecessors: a profile whose latest
// version is preceded by more versions signed by online keys than this,
// with none signed by the offline key, is not proved (the owner re-signs
// a version with the offline key).
const MaxPredecessors = 16

// MapProof is the lookup proof of one name in a log's verifiable map.
type MapProof struct {
	// Namespace is profile, escrow or account.
	Namespace string
	// Name is the identifier or account name, as the map keys it.
	Name string
	// Proof is the proof's binary encoding (vmap.Proof.MarshalBinary).
	Proof []byte
}

// CertificateProof ties a log's checkpoint to the latest master-hash
// certificate this node committed to its own log.
type CertificateProof struct {
	// Checkpoint is the node's own latest signed checkpoint; the MasterHash
	// record is in its tree.
	Checkpoint string `json:",omitempty"`
	// RecordIndex and RecordLeaf are the MasterHash record's index and leaf
	// encoding; its payload holds the certificate (a signed note) and the
	// checkpoints it covers, in origin order (docs/formats.md).
	RecordIndex uint64
	RecordLeaf  []byte `json:",omitempty"`
	// RecordInclusion is the inclusion proof of RecordLeaf in Checkpoint.
	RecordInclusion [][]byte `json:",omitempty"`
	// Consistency is the RFC 6962 consistency proof from the certified
	// checkpoint of the entries' log to GetProof.Checkpoint; absent when
	// they are the same size or the certified one is the larger.
	Consistency [][]byte `json:",omitempty"`
}

// PublishRequest publishes a signed profile or an escrow entry.
type PublishRequest struct {
	MeshRequest
	Entry Entry `json:",omitempty"`
	// AccountID is the account of this portal the entry is published for
	// (required): the account's profile, the ProfileMesh its ProfileAccount
	// names, or any other entry vouched for by Proof.
	AccountID string `json:",omitempty"`
	// Proof is an AccountProof for Publish and Entry, signed by a key of
	// the account's profile; required unless Entry is the account's own
	// profile (or its ProfileMesh).
	Proof Entry `json:",omitempty"`
}

// PublishResponse reports the outcome of Publish.
type PublishResponse struct {
	MeshResponse
	// Written (this project) is the record the write appended (see
	// CreateResponse).
	Written *WrittenRecord `json:",omitempty"`
}

// StatusRequest asks for the state of the log and its checkpoints.
type StatusRequest struct{ MeshRequest }

// StatusResponse reports the state of the log and its checkpoints.
type StatusResponse struct {
	MeshResponse
	LastWriteTime      *time.Time `json:",omitempty"`
	LastCheckpointTime *time.Time `json:",omitempty"`
	NextCheckpointTime *time.Time `json:",omitempty"`
	// CheckpointValue is the latest checkpoint, a C2SP signed note.
	CheckpointValue string `json:",omitempty"`
	// Peers are the proof chains for each federation member (docs/design.md,
	// "Status and its proof chains"); filled when the node provides a PeerProofs source.
	Peers []PeerProof `json:",omitempty"`
	// Evidence lists the proofs of misbehaviour this node holds: pairs of
	// signed checkpoints of one origin that cannot both be true.
	Evidence []Evidence `json:",omitempty"`
}

// Evidence is proof that a federation member equivocated: two notes signed
// by its key that cannot both be true, and why.
type Evidence struct {
	Origin string    `json:",omitempty"`
	Reason string    `json:",omitempty"`
	Notes  [2]string `json:",omitempty"`
	// Root1 and Proof make consistency evidence: the later note's tree has
	// root Root1 at the earlier note's size (not the earlier note's root),
	// as the RFC 6962 consistency proof Proof from Root1 to the later root
	// shows. Empty for evidence whose notes conflict on their face.
	Root1 []byte   `json:",omitempty"`
	Proof [][]byte `json:",omitempty"`
	// RecordIndex is the index of the Evidence record in this node's log,
	// when it has been appended.
	RecordIndex *uint64 `json:",omitempty"`
}

// PeerProof is the proof chain of one federation member: its latest
// checkpoint, the consistency proof from its previous one, the inclusion
// proof of the checkpoint in the quorum master hash, and the inclusion proof
// of that MasterHash record in this node's latest checkpoint.
type PeerProof struct {
	Origin     string `json:",omitempty"`
	Checkpoint string `json:",omitempty"`
	// PreviousCheckpoint is the checkpoint of the same origin that
	// ConsistencyProof starts from (the one this node held before).
	PreviousCheckpoint    string   `json:",omitempty"`
	ConsistencyProof      [][]byte `json:",omitempty"`
	MasterHash            string   `json:",omitempty"`
	MasterHashInclusion   [][]byte `json:",omitempty"`
	MasterRecordIndex     *uint64  `json:",omitempty"`
	MasterRecordInclusion [][]byte `json:",omitempty"`
}

// ConnectStartRequest posts a device's signed connection request.
type ConnectStartRequest struct {
	MeshRequest
	SignedRequest Entry  `json:",omitempty"`
	AccountID     string `json:",omitempty"`
}

// ConnectStartResponse reports the outcome of ConnectStart.
type ConnectStartResponse struct{ MeshResponse }

// ConnectStatusRequest asks for the result of a device's connection request.
type ConnectStatusRequest struct {
	MeshRequest
	AccountID string `json:",omitempty"`
	DeviceID  string `json:",omitempty"`
}

// ConnectStatusResponse carries the signed result, once there is one.
type ConnectStatusResponse struct {
	MeshResponse
	Result Entry `json:",omitempty"`
}

// ConnectPendingRequest asks for an account's pending connection requests.
type ConnectPendingRequest struct {
	MeshRequest
	AccountID         string             `json:",omitempty"`
	SearchConstraints *SearchConstraints `json:",omitempty"`
	// Proof is an AccountProof for ConnectPending, signed by a key of the
	// account's profile (required, on every page).
	Proof Entry `json:",omitempty"`
}

// ConnectPendingResponse lists pending requests, oldest first.
type ConnectPendingResponse struct {
	MeshResponse
	Pending []Entry `json:",omitempty"`
	PageKey string  `json:",omitempty"`
}

// ConnectCompleteRequest posts the signed result of a connection request.
type ConnectCompleteRequest struct {
	MeshRequest
	Result    Entry  `json:",omitempty"`
	AccountID string `json:",omitempty"`
}

// ConnectCompleteResponse reports the outcome of ConnectComplete.
type ConnectCompleteResponse struct{ MeshResponse }

// TransferRequest asks for a range of the log. From (this project) starts
// the transfer at that log index. Origin (this project), if set to another
// portal's log name, asks for this portal's replica of that portal's log
// instead of its own; a portal that holds no replica of Origin answers
// NotFound.
type TransferRequest struct {
	MeshRequest
	SearchConstraints *SearchConstraints `json:",omitempty"`
	From              uint64             `json:",omitempty"`
	Origin            string             `json:",omitempty"`
}

// TransferResponse carries log records, each with its leaf bytes.
type TransferResponse struct {
	MeshResponse
	DataItems []DataItem `json:",omitempty"`
	PageKey   string     `json:",omitempty"`
}

// ListMessagesRequest (this project's extension; the drafts define no
// transaction that lists an account's messages) asks for the messages
// published for an account: the CatalogedPublications whose PublishRequest
// named it as AccountID, oldest first, paged with SearchConstraints.
type ListMessagesRequest struct {
	MeshRequest
	AccountID         string             `json:",omitempty"`
	SearchConstraints *SearchConstraints `json:",omitempty"`
	// Proof is an AccountProof for ListMessages, signed by a key of the
	// account's profile (required, on every page).
	Proof Entry `json:",omitempty"`
}

// ListMessagesResponse lists an account's messages, oldest first: each
// DataItem has the publication's Identifier (the message ID), its log
// Index and Time, and Entry, the CatalogedPublication (ciphertext).
type ListMessagesResponse struct {
	MeshResponse
	DataItems []DataItem `json:",omitempty"`
	PageKey   string     `json:",omitempty"`
}
