package portal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/portal/mesh"
)

// PortalEntry is the payload of every record the portal writes to the log
// (seed 001 §8.1, "Mesh Portal Log Entries"): the Mesh object exactly as the
// client sent it, plus what the portal verified about it before appending.
// Together with the record's Kind, Identifier and Account fields it is all the
// materialized state is built from, so the state can be rebuilt from the log
// alone (State.Rebuild) without verifying signatures again; an auditor can
// recheck every claim here against Entry with package portal/mesh.
//
// On the wire (and in the log) it is a one-member object:
//
//	{"PortalEntry":{"Transaction":"Publish","Type":"ProfileMesh",
//	  "Signer":"MCOZ-GIZ3-34VQ-GQ6J-FCS7-BJIU-JCOY",
//	  "OfflineKey":"MCOZ-GIZ3-34VQ-GQ6J-FCS7-BJIU-JCOY","OnlineKeys":["MDF4-..."],
//	  "Entry":{"ProfileMesh":[{"dig":"SHA2"},"eyJ...",{"signatures":[...]}]}}}
//
// By record kind:
//
//	Account            CreateAccount: Status "Open", AccountID as given, Entry = the
//	                   account's profile (Signer/OfflineKey/OnlineKeys as for a profile);
//	                   record Identifier = the profile's UDF, Account = canonical name.
//	                   DeleteAccount: Status "Closed", Entry = the proof, Signer = its
//	                   key ("" when the operator's admin token authorized it).
//	Profile            Publish of a signed profile: Identifier = UDF of its offline key,
//	                   Account = the canonical name of the account it is published for;
//	                   Updated = its signed Updated; SignerKey, Proof, ProofSigner if any.
//	Escrow             Publish of an OfflineEscrowEntry or a CatalogedPublication (an
//	                   encrypted entry): Identifier = its UDF, no Signer, Account, Proof
//	                   and ProofSigner as for a profile.
//	ConnectionRequest  ConnectStart: Entry = the device's signed request, Signer = the
//	                   device key, Identifier = the device ID, Account = canonical name.
//	ConnectionResult   ConnectComplete: Entry = the signed result, Signer = the
//	                   administration key, Identifier = the device ID.
type PortalEntry struct {
	// Transaction is the portal transaction that wrote the record.
	Transaction string
	// Type is the type of Entry, e.g. "ProfileMesh".
	Type string `json:",omitempty"`
	// AccountID is the account name as the client spelled it.
	AccountID string `json:",omitempty"`
	// Status is the account status an Account record sets: Open or Closed.
	Status string `json:",omitempty"`
	// Signer is the UDF of the key whose signature over Entry was verified.
	Signer string `json:",omitempty"`
	// OfflineKey is the UDF of a profile's KeyOfflineSignature.
	OfflineKey string `json:",omitempty"`
	// OnlineKeys are the UDFs of a profile's KeysOnlineSignature: the keys
	// that may sign updates of the profile and connection results.
	OnlineKeys []string `json:",omitempty"`
	// SignerKey is the public key that verified Entry's signature when it
	// is not one of Entry's own keys: an update signed by an online key of
	// the previous version that the update removes. Kept so that the
	// version stays verifiable on its own after the key is gone.
	SignerKey *mesh.KeyData `json:",omitempty"`
	// MeshProfile is, for a ProfileAccount, the ProfileMesh its signed
	// MeshProfileUDF names.
	MeshProfile string `json:",omitempty"`
	// Updated is the profile's signed Updated time (absent if the profile
	// has none): the version order of a profile (see docs/formats.md).
	Updated *time.Time `json:",omitempty"`
	// Proof is the AccountProof that bound Entry to the record's account
	// (Publish of an entry that is not the account's own profile), and
	// ProofSigner the UDF of the administration key that signed it.
	Proof       Entry  `json:",omitempty"`
	ProofSigner string `json:",omitempty"`
	// Entry is the Mesh object as received.
	Entry Entry `json:",omitempty"`
}

// Account statuses (seed 001 §8.1.2).
const (
	AccountOpen   = "Open"
	AccountClosed = "Closed"
)

// portalEntryName is the member name of a marshalled PortalEntry.
const portalEntryName = "PortalEntry"

// MarshalPortalEntry returns the record payload for pe.
func MarshalPortalEntry(pe *PortalEntry) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // keep the entry's bytes as they were
	if err := enc.Encode(map[string]*PortalEntry{portalEntryName: pe}); err != nil {
		return nil, fmt.Errorf("portal: encoding portal entry: %w", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// UnmarshalPortalEntry decodes a record payload written by the portal.
func UnmarshalPortalEntry(payload []byte) (*PortalEntry, error) {
	var m struct {
		PortalEntry *PortalEntry
	}
	if err := json.Unmarshal(payload, &m); err != nil {
		return nil, fmt.Errorf("portal: decoding portal entry: %w", err)
	}
	if m.PortalEntry == nil {
		return nil, fmt.Errorf("portal: payload is not a %s", portalEntryName)
	}
	return m.PortalEntry, nil
}

// dataItem turns a record into a DataItem. With meta it carries the log
// metadata and the leaf bytes (Get with Full, and Transfer). With inner the
// Entry is the Mesh object inside a PortalEntry (Get); otherwise it is the
// whole payload (Transfer: the decoded record).
func dataItem(rec *log.Record, meta, inner bool) DataItem {
	item := DataItem{Identifier: rec.Identifier}
	payload := rec.Payload
	if inner {
		if pe, err := UnmarshalPortalEntry(rec.Payload); err == nil && len(pe.Entry) > 0 {
			payload = pe.Entry
		}
	}
	if json.Valid(payload) {
		item.Entry = json.RawMessage(payload)
	} else {
		item.Payload = payload
	}
	if meta {
		seq, t := rec.Seq, rec.Time
		item.Index, item.Time = &seq, &t
		item.Kind, item.Account, item.Origin = string(rec.Kind), rec.Account, rec.Origin
		item.Leaf = rec.MarshalLeaf()
	}
	return item
}
