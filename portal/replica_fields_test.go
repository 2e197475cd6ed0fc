package portal

import (
	"testing"
	"time"
)

func TestReplicaFieldsAreReadOnlyFromAPortalEntryWithAnObjectEntry(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		ok      bool
		typ     string
		status  string
		updated string
	}{
		{"a profile", `{"PortalEntry":{"Transaction":"Publish","Type":"ProfileAccount","Updated":"2030-01-01T00:00:00Z","Entry":{"ProfileAccount":[{},"e30",{}]}}}`,
			true, "ProfileAccount", "", "2030-01-01T00:00:00Z"},
		{"an account closing", `{"PortalEntry":{"Transaction":"Delete","Status":"Closed","Entry":{"ProfileAccount":{}}}}`, true, "", "Closed", ""},
		{"not JSON", `not json`, false, "", "", ""},
		{"truncated", `{"PortalEntry":{"Type":"ProfileAccount","Entry":{"P":{}}`, false, "", "", ""},
		{"another object", `{"Something":{"Entry":{"P":{}}}}`, false, "", "", ""},
		{"a null PortalEntry", `{"PortalEntry":null}`, false, "", "", ""},
		{"no Entry", `{"PortalEntry":{"Type":"ProfileAccount"}}`, false, "", "", ""},
		{"an Entry that is a string", `{"PortalEntry":{"Type":"ProfileAccount","Entry":"x"}}`, false, "", "", ""},
		{"an Entry that is an array", `{"PortalEntry":{"Type":"ProfileAccount","Entry":[{}]}}`, false, "", "", ""},
		{"an Updated that is not a time", `{"PortalEntry":{"Updated":"yesterday","Entry":{"P":{}}}}`, false, "", "", ""},
		{"a Type that is not a string", `{"PortalEntry":{"Type":7,"Entry":{"P":{}}}}`, false, "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, ok := replicaFieldsOf([]byte(tc.payload))
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			var updated string
			if f.Updated != nil {
				updated = f.Updated.UTC().Format(time.RFC3339)
			}
			if f.Type != tc.typ || f.Status != tc.status || updated != tc.updated {
				t.Errorf("got Type %q Status %q Updated %q, want %q %q %q", f.Type, f.Status, updated, tc.typ, tc.status, tc.updated)
			}
		})
	}
}

// FuzzReplicaFields checks that the replica indexer's partial decoding never
// drops a payload that UnmarshalPortalEntry accepts, and reads the same
// fields from it.
func FuzzReplicaFields(f *testing.F) {
	f.Add([]byte(`{"PortalEntry":{"Transaction":"Publish","Type":"ProfileAccount","Updated":"2030-01-01T00:00:00Z","Entry":{"ProfileAccount":[{},"e30",{}]}}}`))
	f.Add([]byte(`{"PortalEntry":{"Status":"Closed","Entry":{"P":{}},"Proof":{"AccountProof":{}}}}`))
	f.Add([]byte(`{"PortalEntry":{"Entry":[]}}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		pe, err := UnmarshalPortalEntry(payload)
		f, ok := replicaFieldsOf(payload)
		if err != nil || len(pe.Entry) == 0 {
			return
		}
		if !ok {
			t.Fatalf("UnmarshalPortalEntry accepts %q with an Entry, replicaFieldsOf does not", payload)
		}
		if f.Type != pe.Type || f.Status != pe.Status || !timesEqual(f.Updated, pe.Updated) {
			t.Fatalf("fields of %q: %q %q %v, UnmarshalPortalEntry: %q %q %v", payload, f.Type, f.Status, f.Updated, pe.Type, pe.Status, pe.Updated)
		}
	})
}
